"""Settings of the REST control plane (the ``api:`` section): bind rule, keys, TLS, the
console's session cookie.

Kept apart from :mod:`vigil.config` (which re-exports them) to keep that module small.
"""

from __future__ import annotations

import hashlib
import ipaddress
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

Port = Annotated[int, Field(ge=0, le=65535)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TlsSettings(_Model):
    """HTTPS for the REST API, optionally with client certificates (mutual TLS)."""

    cert_file: Path | None = Field(
        None, description="Server certificate chain (PEM); with key_file the API speaks HTTPS"
    )
    key_file: Path | None = Field(None, description="Private key of cert_file (PEM, unencrypted)")
    client_ca_file: Path | None = Field(
        None,
        description="CA certificates (PEM): clients must present a certificate signed by one "
        "(mutual TLS); unset = no client certificates",
    )

    @model_validator(mode="after")
    def _files(self) -> TlsSettings:
        if (self.cert_file is None) != (self.key_file is None):
            missing = "key_file" if self.key_file is None else "cert_file"
            raise ValueError(
                f"api.tls.{missing} is unset: set api.tls.cert_file and api.tls.key_file "
                "together (or neither, for plain HTTP)"
            )
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError(
                "api.tls.client_ca_file needs api.tls.cert_file and api.tls.key_file "
                "(client certificates are only asked for over HTTPS)"
            )
        for name in ("cert_file", "key_file", "client_ca_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"api.tls.{name}: no such file: {path}")
        return self

    @property
    def enabled(self) -> bool:
        """Whether the API speaks HTTPS."""
        return self.cert_file is not None


def key_id(key: str) -> str:
    """The name an API key goes by in logs: ``key-`` and 8 hex digits of its SHA-256."""
    return "key-" + hashlib.sha256(key.encode()).hexdigest()[:8]


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip().strip("[]")).is_loopback
    except ValueError:
        return False  # any other name may resolve to a public address


class ApiSettings(_Model):
    """The REST control plane of `vigil serve`."""

    host: str = Field("127.0.0.1", description="Address to listen on")
    port: Port = Field(8080, description="HTTP port")
    api_keys: list[SecretStr] = Field(
        default_factory=list,
        description="Keys accepted in X-API-Key (JSON list); empty = no authentication",
    )
    protect_reads: bool = Field(False, description="Require a key for read-only endpoints too")
    allow_insecure: bool = Field(
        False,
        description="Start without api_keys on a non-loopback host (otherwise `vigil serve` "
        "refuses to)",
    )
    max_body_bytes: int = Field(
        1 << 20,
        ge=1,
        description="Larger request bodies are refused with 413 (model uploads have "
        "model.max_upload_bytes instead)",
    )
    session_ttl_s: int = Field(
        8 * 3600,
        ge=60,
        le=30 * 86400,
        description="Lifetime of the web console's session cookie (POST /api/v1/session)",
    )
    tls: TlsSettings = TlsSettings()

    def key_ids(self) -> list[tuple[str, str]]:
        """``(key id, key)`` for every configured key."""
        return [(key_id(k.get_secret_value()), k.get_secret_value()) for k in self.api_keys]

    def insecure_bind(self) -> str | None:
        """Why the API must not start as configured (a public address without keys), or
        None."""
        if self.api_keys or self.allow_insecure or is_loopback(self.host):
            return None
        return (
            f"refusing to serve the API on {self.host} (not a loopback address) without API "
            "keys: anyone who can reach it could control the pipeline. Set "
            "VIGIL_API__API_KEYS='[\"<key>\"]' (api.api_keys), or listen on 127.0.0.1, or "
            "set VIGIL_API__ALLOW_INSECURE=true (api.allow_insecure) to accept the risk"
        )
