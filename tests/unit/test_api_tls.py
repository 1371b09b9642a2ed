"""The REST API over mutual TLS, served by a real uvicorn on a free port.

Certificates are made here with the ``openssl`` command: a CA, a server certificate for
127.0.0.1 and a client certificate signed by it, and a second CA with its own client.
"""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import uvicorn

from vigil.api.app import create_app
from vigil.config import ApiSettings, Settings, TlsSettings
from vigil.service import check_api, tls_options

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

CA_EXT = (
    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n"
    "subjectKeyIdentifier=hash\n"
)
LEAF_EXT = (
    "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
    "subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
)


def _openssl(*args: str | Path) -> None:
    subprocess.run(["openssl", *map(str, args)], check=True, capture_output=True, timeout=30)


def _key(path: Path) -> Path:
    _openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path)
    return path


def _config(d: Path, name: str, extensions: str) -> Path:
    path = d / f"{name}.cnf"
    path.write_text(
        f"[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = {name}\n[v3]\n{extensions}"
    )
    return path


def _ca(d: Path, name: str) -> tuple[Path, Path]:
    key = _key(d / f"{name}.key")
    cert = d / f"{name}.pem"
    config = _config(d, name, CA_EXT)
    _openssl(
        "req", "-x509", "-new", "-key", key, "-out", cert, "-days", "2",
        "-config", config, "-extensions", "v3",
    )  # fmt: skip
    return cert, key


def _leaf(d: Path, name: str, ca: tuple[Path, Path], extra: str) -> tuple[Path, Path]:
    key = _key(d / f"{name}.key")
    csr, cert = d / f"{name}.csr", d / f"{name}.pem"
    config = _config(d, name, LEAF_EXT + extra)
    _openssl("req", "-new", "-key", key, "-out", csr, "-config", config)
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-CAcreateserial",
        "-out", cert, "-days", "2", "-extfile", config, "-extensions", "v3",
    )  # fmt: skip
    return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("pki")
    ca = _ca(d, "vigil-test-ca")
    other_ca = _ca(d, "other-ca")
    server = _leaf(
        d, "server", ca, "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n"
    )
    client = _leaf(d, "client", ca, "extendedKeyUsage=clientAuth\n")
    stranger = _leaf(d, "stranger", other_ca, "extendedKeyUsage=clientAuth\n")
    return SimpleNamespace(ca=ca[0], server=server, client=client, stranger=stranger)


@pytest.fixture(scope="module")
def https_url(pki: SimpleNamespace) -> Iterator[str]:
    """``https://127.0.0.1:<port>`` of a real uvicorn serving Vigil's app with mutual TLS."""
    api = ApiSettings(
        tls=TlsSettings(cert_file=pki.server[0], key_file=pki.server[1], client_ca_file=pki.ca)
    )
    assert check_api(api) is None
    runtime = SimpleNamespace(settings=Settings(api=api), cluster=None)
    config = uvicorn.Config(
        create_app(runtime),  # type: ignore[arg-type]
        host="127.0.0.1",
        port=0,
        lifespan="off",
        access_log=False,
        log_level="warning",
        **tls_options(api),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "uvicorn did not start"
        assert time.monotonic() < deadline, "uvicorn did not start in 20 s"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"https://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


def _client(pki: SimpleNamespace, cert: tuple[Path, Path] | None) -> httpx.Client:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    return httpx.Client(verify=context, timeout=10)


def test_tls_options_when_client_ca_then_client_certificates_required(pki) -> None:
    api = ApiSettings(
        tls=TlsSettings(cert_file=pki.server[0], key_file=pki.server[1], client_ca_file=pki.ca)
    )
    options = tls_options(api)
    assert options["ssl_cert_reqs"] == ssl.CERT_REQUIRED
    assert options["ssl_ca_certs"] == str(pki.ca)
    no_mtls = ApiSettings(tls=TlsSettings(cert_file=pki.server[0], key_file=pki.server[1]))
    assert "ssl_cert_reqs" not in tls_options(no_mtls)


def test_mtls_when_client_cert_from_the_ca_then_request_served(https_url, pki) -> None:
    with _client(pki, pki.client) as client:
        reply = client.get(f"{https_url}/api/v1/live")
    assert reply.status_code == 200


def test_mtls_when_no_client_cert_then_refused(https_url, pki) -> None:
    with _client(pki, None) as client, pytest.raises(httpx.TransportError):
        client.get(f"{https_url}/api/v1/live")


def test_mtls_when_client_cert_from_another_ca_then_refused(https_url, pki) -> None:
    with _client(pki, pki.stranger) as client, pytest.raises(httpx.TransportError):
        client.get(f"{https_url}/api/v1/live")


def test_tls_when_plain_http_to_https_port_then_no_answer(https_url) -> None:
    with httpx.Client(timeout=10) as client, pytest.raises(httpx.TransportError):
        client.get(https_url.replace("https://", "http://") + "/api/v1/live")


def test_check_api_when_key_does_not_match_cert_then_names_the_fields(pki) -> None:
    api = ApiSettings(tls=TlsSettings(cert_file=pki.server[0], key_file=pki.client[1]))
    problem = check_api(api)
    assert problem is not None
    assert "api.tls.cert_file / api.tls.key_file" in problem
