"""Stream URLs made safe for logs, errors and the API (no PyAV needed)."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

_SECRET_QUERY_KEY = re.compile(r"user|pass|pwd|token|secret|key|auth|sig|cred", re.IGNORECASE)
_USERINFO = re.compile(r"(//)[^/?#@]*@")
_BARE_USERINFO = re.compile(r"^[^/?#@]*@")
REDACTED = "***"


def redact_url(url: str) -> str:
    """The URL without its secrets, fit for logs, errors and the API.

    User name and password become ``***``, as do the values of query parameters whose names
    look like secrets or user names (``password``, ``token``, ``api_key``, ``user``, ...).
    A URL that cannot be parsed still loses anything between ``//`` and ``@``, one without
    ``//`` anything before its first ``@``.

    Example:
        >>> redact_url("rtsp://admin:hunter2@10.0.0.5:554/stream1")
        'rtsp://***@10.0.0.5:554/stream1'
    """
    if "//" not in url:
        # "user:pass@host/x" with its scheme forgotten: urlsplit would call "user" the scheme.
        return _BARE_USERINFO.sub(f"{REDACTED}@", url)
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            netloc = f"{REDACTED}@{netloc.rpartition('@')[2]}"
        query = parts.query
        if query:
            pairs = parse_qsl(query, keep_blank_values=True)
            if any(_SECRET_QUERY_KEY.search(k) for k, _ in pairs):
                query = urlencode(
                    [(k, REDACTED if _SECRET_QUERY_KEY.search(k) else v) for k, v in pairs],
                    safe="*",
                )
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return _USERINFO.sub(rf"\g<1>{REDACTED}@", url)


def file_path(url: str) -> Path:
    """The local path a ``file://`` URL names (percent-decoded), as file sources read it."""
    return Path(unquote(urlsplit(url).path))
