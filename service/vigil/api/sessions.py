"""Session tokens for the web console's cookie: what lets ``<img>``, ``<video>`` and
``EventSource`` (which cannot send an ``X-API-Key`` header) read a key-protected API.

A token is ``<key id>.<expiry>.<nonce>.<mac>``: the MAC is an HMAC-SHA256 of the first three
parts under a key derived from the API key that opened the session. It never holds the key
itself; it verifies only while that key is configured (removing a key ends its sessions),
across restarts and replicas that share the keys, and only until its expiry. The cookie
authorizes reads (GET) only — see :func:`vigil.api.deps.require_read_key` — so a forged
cross-site request cannot change anything with it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Iterable

COOKIE = "vigil_session"
"""Name of the session cookie."""

_MAX_TOKEN_CHARS = 256
_DOMAIN = b"vigil-console-session-v1"  # the MAC key is not the API key itself


def _mac(api_key: str, payload: str) -> str:
    signing_key = hmac.new(api_key.encode(), _DOMAIN, hashlib.sha256).digest()
    return hmac.new(signing_key, payload.encode(), hashlib.sha256).hexdigest()


def issue_token(key_id: str, api_key: str, ttl_s: float, now: float | None = None) -> str:
    """A token for the key ``key_id`` (whose value is ``api_key``), valid ``ttl_s`` seconds."""
    expires = int((time.time() if now is None else now) + ttl_s)
    payload = f"{key_id}.{expires}.{secrets.token_hex(8)}"
    return f"{payload}.{_mac(api_key, payload)}"


def verify_token(
    token: str, keys: Iterable[tuple[str, str]], now: float | None = None
) -> str | None:
    """The key id a valid, unexpired token was issued for, or None.

    Args:
        token: The cookie's value.
        keys: ``(key id, key)`` of the configured API keys.
        now: The time (seconds since the epoch); default now.
    """
    if len(token) > _MAX_TOKEN_CHARS:
        return None
    parts = token.split(".")
    if len(parts) != 4 or not parts[1].isdigit():
        return None
    key_id, expires, _, mac = parts
    if int(expires) <= (time.time() if now is None else now):
        return None
    payload = token.rpartition(".")[0]
    for kid, key in keys:
        if hmac.compare_digest(kid, key_id):
            return key_id if hmac.compare_digest(_mac(key, payload), mac) else None
    return None
