"""Securing the REST API: key ids, body cap, audit log, the bind rule, TLS settings."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.testclient import TestClient
from pydantic import ValidationError

from vigil import service
from vigil.api import deps
from vigil.api.app import create_app
from vigil.api.routers.models import has_own_body_limit
from vigil.api.security import LimitRequestBody
from vigil.config import ApiSettings, Settings, is_loopback, key_id
from vigil.infer.errors import RegistryError
from vigil.pipeline.manager import ManagedStream
from vigil.pipeline.stream_state import StreamStatus
from vigil.specs import StreamSpec

KEY, OTHER_KEY = "s3cret-key-number-one", "another-key"
MIB = 1 << 20


class FakeStreams:
    def __init__(self) -> None:
        self.added: list[str] = []

    async def add(self, spec: StreamSpec) -> ManagedStream:
        self.added.append(spec.id)
        return ManagedStream(spec, StreamStatus(spec.id, spec.url))

    def list(self) -> list[ManagedStream]:
        return []


class FakeRegistry:
    """Accepts any model name; staging reports how many bytes the route received."""

    max_upload_bytes = 64 * MIB

    def config(self, name: str) -> object:
        return object()

    def stage_upload(self, name: str, upload: Path, filename: str) -> Path:
        raise RegistryError(f"received {upload.stat().st_size} bytes", 422)

    def stage_path(self, name: str, path: Path) -> Path:
        raise RegistryError(f"no such path {path}", 422)


def make_client(**api: object) -> TestClient:
    settings = Settings(api=ApiSettings(**api))  # type: ignore[arg-type]
    streams = FakeStreams()
    runtime = SimpleNamespace(
        settings=settings,
        streams=streams,
        stream_control=streams,
        registry=FakeRegistry(),
        cluster=None,
    )
    return TestClient(create_app(runtime), raise_server_exceptions=False)  # type: ignore[arg-type]


def add_stream(client: TestClient, **headers: str) -> int:
    body = {"id": "cam-1", "url": "test://pattern"}
    return client.post("/api/v1/streams", json=body, headers=headers).status_code


# --- key ids ----------------------------------------------------------------------------


def test_key_id_when_computed_then_short_stable_and_not_the_key() -> None:
    kid = key_id(KEY)
    assert kid == key_id(KEY)
    assert kid != key_id(OTHER_KEY)
    assert kid.startswith("key-")
    assert len(kid) == 12
    assert KEY not in kid
    settings = ApiSettings(api_keys=[KEY, OTHER_KEY])  # type: ignore[list-item]
    assert [k for k, _ in settings.key_ids()] == [key_id(KEY), key_id(OTHER_KEY)]


def _key_id_app(**api: object) -> TestClient:
    app = FastAPI()
    settings = ApiSettings(**api)  # type: ignore[arg-type]
    app.dependency_overrides[deps.get_api_settings] = lambda: settings

    @app.post("/write", dependencies=[Depends(deps.require_write_key)])
    def write(request: Request) -> dict[str, str]:
        return {"key_id": request.state.key_id}

    @app.get("/read", dependencies=[Depends(deps.require_read_key)])
    def read(request: Request) -> dict[str, str]:
        return {"key_id": request.state.key_id}

    return TestClient(app)


def test_auth_when_key_matches_then_request_carries_its_id() -> None:
    client = _key_id_app(api_keys=[OTHER_KEY, KEY])
    reply = client.post("/write", headers={"X-API-Key": KEY})
    assert reply.status_code == 200
    assert reply.json() == {"key_id": key_id(KEY)}
    assert client.get("/read").json() == {"key_id": "anonymous"}, "unguarded read"


def test_auth_when_keys_off_then_key_id_is_anonymous() -> None:
    client = _key_id_app()
    assert client.post("/write").json() == {"key_id": "anonymous"}
    assert client.get("/read").json() == {"key_id": "anonymous"}


def test_auth_when_protect_reads_then_read_carries_key_id() -> None:
    client = _key_id_app(api_keys=[KEY], protect_reads=True)
    assert client.get("/read").status_code == 401
    assert client.get("/read", headers={"X-API-Key": KEY}).json() == {"key_id": key_id(KEY)}


def test_auth_when_key_not_ascii_then_403_not_500() -> None:
    client = _key_id_app(api_keys=[KEY])
    reply = client.post("/write", headers={"X-API-Key": "clé".encode("latin-1")})
    assert reply.status_code == 403


# --- body cap -----------------------------------------------------------------------------


def test_body_cap_when_content_length_over_limit_then_413_naming_limit() -> None:
    client = make_client(max_body_bytes=1000)
    reply = client.post(
        "/api/v1/streams",
        content=b'{"id": "cam-1", "url": "test://pattern", "name": "' + b"x" * 2000 + b'"}',
        headers={"content-type": "application/json"},
    )
    assert reply.status_code == 413
    assert "api.max_body_bytes (1000 bytes)" in reply.json()["detail"]


def test_body_cap_when_default_then_one_mib() -> None:
    assert ApiSettings().max_body_bytes == MIB
    client = make_client()
    reply = client.post(
        "/api/v1/streams", content=b"x" * (MIB + 1), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413
    assert str(MIB) in reply.text


def test_body_cap_when_streamed_without_length_then_413() -> None:
    def chunks():
        for _ in range(10):
            yield b"x" * 500

    client = make_client(max_body_bytes=1000)
    reply = client.post(
        "/api/v1/streams", content=chunks(), headers={"content-type": "application/json"}
    )
    assert reply.status_code == 413
    assert "1000 bytes" in reply.text


async def _asgi_call(app, body_chunks: list[bytes], headers: list[tuple[bytes, bytes]]):
    """Drive an ASGI app directly: the body in several messages, no Content-Length."""
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(body_chunks) - 1}
        for i, c in enumerate(body_chunks)
    ]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/x", "headers": headers}
    await app(scope, receive, send)
    return sent


def test_body_cap_when_streamed_body_passes_limit_then_app_answer_replaced_by_413() -> None:
    async def app(scope, receive, send):  # reads everything, then answers 200
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def swallowing_app(scope, receive, send):  # turns the read error into a 400
        try:
            await app(scope, receive, send)
        except Exception:
            await send({"type": "http.response.start", "status": 400, "headers": []})
            await send({"type": "http.response.body", "body": b"bad"})

    for inner in (app, swallowing_app):
        capped = LimitRequestBody(inner, max_bytes=10)
        sent = asyncio.run(_asgi_call(capped, [b"12345", b"67890", b"1"], []))
        assert sent[0]["status"] == 413
        assert b"10 bytes" in sent[1]["body"]
        assert len(sent) == 2
        fine = asyncio.run(_asgi_call(capped, [b"12345", b"67890"], []))
        assert fine[0]["status"] == 200


def test_body_cap_when_model_upload_then_exempt_and_own_limit_applies() -> None:
    assert has_own_body_limit("POST", "/api/v1/models/ssd/versions")
    assert not has_own_body_limit("POST", "/api/v1/models/ssd/versions/from-path")
    assert not has_own_body_limit("POST", "/api/v1/models/ssd/swap")
    assert not has_own_body_limit("POST", "/api/v1/streams")
    client = make_client()
    size = 2 * MIB
    reply = client.post("/api/v1/models/ssd/versions", files={"file": ("model.onnx", b"\0" * size)})
    assert reply.status_code == 422, reply.text
    assert f"received {size} bytes" in reply.text, "the whole upload reached the route"
    reply = client.post(
        "/api/v1/models/ssd/versions/from-path",
        json={"path": "/" + "a" * (2 * MIB)},
    )
    assert reply.status_code == 413


# --- audit log ----------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _log_level_warning():
    """The default ``log_level``, as `vigil serve` sets it: audit lines must still come out."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.WARNING)
    yield
    root.setLevel(level)


def _audit(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "vigil.audit"]


def test_audit_when_mutating_call_then_one_line_with_key_id_not_key_nor_body(caplog) -> None:
    client = make_client(api_keys=[KEY])
    assert add_stream(client, **{"X-API-Key": KEY}) == 201
    [record] = _audit(caplog)
    assert record.levelno == logging.INFO
    line = record.getMessage()
    assert key_id(KEY) in line
    assert "POST /api/v1/streams 201" in line
    assert "client=testclient:" in line
    assert "duration_ms=" in line
    assert KEY not in line
    assert "test://pattern" not in line
    assert "cam-1" not in line
    audit = record.audit  # type: ignore[attr-defined]
    assert audit["key_id"] == key_id(KEY)
    assert audit["method"] == "POST"
    assert audit["status"] == 201
    assert audit["duration_ms"] >= 0


def test_audit_when_refused_then_logged_with_why(caplog) -> None:
    client = make_client(api_keys=[KEY], max_body_bytes=100)
    assert add_stream(client) == 401
    assert add_stream(client, **{"X-API-Key": OTHER_KEY}) == 403
    assert (
        client.post(
            "/api/v1/streams", content=b"x" * 200, headers={"content-type": "application/json"}
        ).status_code
        == 413
    )
    lines = [r.getMessage() for r in _audit(caplog)]
    assert len(lines) == 3
    assert lines[0].startswith("none POST /api/v1/streams 401")
    assert lines[1].startswith("invalid POST /api/v1/streams 403")
    assert lines[2].startswith("- POST /api/v1/streams 413")
    assert not any(OTHER_KEY in line for line in lines)


def test_audit_when_reads_then_not_logged_unless_refused(caplog) -> None:
    client = make_client(api_keys=[KEY], protect_reads=True)
    assert client.get("/api/v1/streams", headers={"X-API-Key": KEY}).status_code == 200
    assert _audit(caplog) == []
    assert client.get("/api/v1/streams").status_code == 401
    [record] = _audit(caplog)
    assert record.getMessage().startswith("none GET /api/v1/streams 401")


def test_audit_when_keys_off_then_anonymous_and_path_escaped(caplog) -> None:
    client = make_client()
    assert add_stream(client) == 201
    client.delete("/api/v1/streams/a%0Afake%20line")
    lines = [r.getMessage() for r in _audit(caplog)]
    assert lines[0].startswith("anonymous POST /api/v1/streams 201")
    assert "\n" not in lines[1]
    assert "a%0Afake%20line" in lines[1]


# --- the bind rule ------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost", "LOCALHOST"])
def test_bind_rule_when_loopback_then_no_keys_needed(host: str) -> None:
    assert is_loopback(host)
    assert ApiSettings(host=host).insecure_bind() is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "camera-gateway.local"])
def test_bind_rule_when_public_without_keys_then_refused_saying_what_to_do(host: str) -> None:
    problem = ApiSettings(host=host).insecure_bind()
    assert problem is not None
    assert host in problem
    assert "VIGIL_API__API_KEYS" in problem
    assert "api.allow_insecure" in problem
    assert ApiSettings(host=host, api_keys=[KEY]).insecure_bind() is None  # type: ignore[list-item]
    assert ApiSettings(host=host, allow_insecure=True).insecure_bind() is None


def test_serve_when_public_without_keys_then_exit_2_before_runtime(monkeypatch, caplog) -> None:
    def must_not_open(_settings):
        raise AssertionError("the runtime (Triton) must not start")

    monkeypatch.setattr(service, "open_runtime", must_not_open)
    settings = Settings(api=ApiSettings(host="0.0.0.0"))
    assert asyncio.run(service.serve(settings)) == service.EXIT_FAILED
    assert "VIGIL_API__API_KEYS" in caplog.text


# --- TLS settings -------------------------------------------------------------------------


def test_tls_when_only_cert_or_key_then_error_names_missing_field(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(ValidationError, match=r"api\.tls\.key_file is unset"):
        ApiSettings(tls={"cert_file": cert})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"api\.tls\.cert_file is unset"):
        ApiSettings(tls={"key_file": cert})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"api\.tls\.client_ca_file needs"):
        ApiSettings(tls={"client_ca_file": cert})  # type: ignore[arg-type]


def test_tls_when_file_missing_then_error_names_field(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    missing = tmp_path / "nope.pem"
    with pytest.raises(ValidationError, match=r"api\.tls\.key_file: no such file"):
        ApiSettings(tls={"cert_file": cert, "key_file": missing})  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match=r"api\.tls\.client_ca_file: no such file"):
        ApiSettings(
            tls={"cert_file": cert, "key_file": cert, "client_ca_file": missing}  # type: ignore[arg-type]
        )


def test_tls_when_set_by_environment_then_loaded(tmp_path: Path, monkeypatch) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    monkeypatch.setenv("VIGIL_API__TLS__CERT_FILE", str(cert))
    monkeypatch.setenv("VIGIL_API__TLS__KEY_FILE", str(cert))
    settings = Settings()
    assert settings.api.tls.enabled
    assert service.tls_options(settings.api) == {
        "ssl_certfile": str(cert),
        "ssl_keyfile": str(cert),
    }


def test_tls_when_files_do_not_load_then_serve_refuses_before_runtime(
    tmp_path: Path, monkeypatch, caplog
) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("not a certificate")
    monkeypatch.setattr(service, "open_runtime", lambda _s: pytest.fail("runtime opened"))
    settings = Settings(api=ApiSettings(tls={"cert_file": cert, "key_file": cert}))  # type: ignore[arg-type]
    assert asyncio.run(service.serve(settings)) == service.EXIT_FAILED
    assert "api.tls.cert_file" in caplog.text


def test_audit_when_deepstream_add_then_key_id_reaches_the_line(caplog) -> None:
    """DeepStream routes rebuild the request from a copy of the scope: the key id set on it
    still reaches the audit line (the state dict is shared)."""
    client = make_client(api_keys=[KEY])
    body = (
        Path(__file__).resolve().parents[1] / "data" / "deepstream" / "add_file.json"
    ).read_bytes()
    reply = client.post(
        "/api/v1/stream/add",
        content=body,
        headers={"X-API-Key": KEY, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert reply.status_code == 200, reply.text
    [record] = _audit(caplog)
    assert record.getMessage().startswith(f"{key_id(KEY)} POST /api/v1/stream/add 200")


def test_body_cap_when_upload_over_model_limit_then_its_own_413() -> None:
    streams = FakeStreams()
    runtime = SimpleNamespace(
        settings=Settings(),
        streams=streams,
        stream_control=streams,
        registry=FakeRegistry(),
        cluster=None,
    )
    runtime.registry.max_upload_bytes = MIB + MIB // 2
    client = TestClient(create_app(runtime), raise_server_exceptions=False)  # type: ignore[arg-type]
    reply = client.post(
        "/api/v1/models/ssd/versions", files={"file": ("model.onnx", b"\0" * (2 * MIB))}
    )
    assert reply.status_code == 413
    assert "model.max_upload_bytes" in reply.text
    assert "api.max_body_bytes" not in reply.text
