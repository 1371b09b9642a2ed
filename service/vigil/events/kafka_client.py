"""Talking to a Kafka broker: client options from the settings (TLS, SASL), topics, errors.

The events publisher, its admin client and the command consumer all connect with
:func:`client_options`. aiokafka logs one error per failed connection attempt; the filter
installed here keeps those out of the log, and :func:`describe_error` puts the last reason into
the one line Vigil logs per outage.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError
from aiokafka.helpers import create_ssl_context

from vigil.config import KafkaSecuritySettings, KafkaSettings

log = logging.getLogger(__name__)


class KafkaConfigError(ValueError):
    """The Kafka settings cannot work (a missing certificate file, a password file, ...)."""


def _read_secret_file(path: Path, what: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        raise KafkaConfigError(f"cannot read {what} from {path}: {e.strerror}") from e


def ssl_context(security: KafkaSecuritySettings) -> ssl.SSLContext | None:
    """The TLS context for SSL / SASL_SSL, or None for plaintext protocols.

    Raises:
        KafkaConfigError: a certificate or key file cannot be loaded (named).
    """
    if security.protocol not in ("SSL", "SASL_SSL"):
        return None
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(security, name)
        if path is not None and not path.is_file():
            raise KafkaConfigError(f"kafka.security.{name}: no such file {path}")
    try:
        context = create_ssl_context(
            cafile=str(security.ca_file) if security.ca_file else None,
            certfile=str(security.cert_file) if security.cert_file else None,
            keyfile=str(security.key_file) if security.key_file else None,
            password=security.key_password.get_secret_value() if security.key_password else None,
        )
    except (ssl.SSLError, OSError) as e:
        raise KafkaConfigError(f"kafka.security: cannot load TLS files: {e}") from e
    context.check_hostname = security.check_hostname
    return context


def client_options(settings: KafkaSettings) -> dict[str, Any]:
    """Connection options shared by producer, consumer and admin client (secrets included).

    Never log the result: use :func:`describe_options`.
    """
    security = settings.security
    options: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": security.protocol,
        "request_timeout_ms": settings.request_timeout_ms,
    }
    context = ssl_context(security)
    if context is not None:
        options["ssl_context"] = context
    if security.protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        if security.sasl_mechanism is None or not security.sasl_username:
            raise KafkaConfigError(
                f"kafka.security: {security.protocol} needs sasl_mechanism and sasl_username"
            )
        if security.sasl_password_file is not None:
            password = _read_secret_file(security.sasl_password_file, "the SASL password")
        elif security.sasl_password is not None:
            password = security.sasl_password.get_secret_value()
        else:
            raise KafkaConfigError("kafka.security: sasl_password or sasl_password_file is needed")
        options.update(
            sasl_mechanism=security.sasl_mechanism,
            sasl_plain_username=security.sasl_username,
            sasl_plain_password=password,
        )
    return options


def producer_options(settings: KafkaSettings) -> dict[str, Any]:
    """Options of the events producer."""
    return {
        **client_options(settings),
        "acks": "all",
        "enable_idempotence": settings.enable_idempotence,
        "linger_ms": settings.linger_ms,
        "max_batch_size": settings.max_batch_bytes,
        "compression_type": None if settings.compression == "none" else settings.compression,
    }


def describe_options(options: dict[str, Any]) -> dict[str, Any]:
    """The options with secrets masked, fit for a log line."""
    return {k: ("***" if "password" in k or k == "ssl_context" else v) for k, v in options.items()}


async def ensure_topics(settings: KafkaSettings, topics: Iterable[str]) -> None:
    """Create the topics that do not exist yet (the broker may have lost them)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            try:
                await admin.create_topics([NewTopic(t, settings.partitions, 1) for t in missing])
                log.info("created Kafka topics %s", missing)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()


class _ConnectErrorFilter(logging.Filter):
    """Keeps aiokafka's per-attempt "Unable connect to ..." errors out of the log.

    aiokafka logs one ERROR for every failed connection attempt (a log flood while a broker
    is away or a certificate is wrong); the publisher logs one clear error per outage
    instead, and takes the reason it reports from the last of these lines.
    """

    last_reason = ""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Unable connect to"):
            _ConnectErrorFilter.last_reason = message.partition(": ")[2] or message
            return False
        return True


logging.getLogger("aiokafka").addFilter(_ConnectErrorFilter())


def describe_error(error: BaseException) -> str:
    """One line that says why a Kafka call failed, with the reason aiokafka logged (TLS
    verification, refused connection) where the exception alone does not say."""
    text = str(error) or type(error).__name__
    if isinstance(error, KafkaConnectionError) and _ConnectErrorFilter.last_reason:
        text = f"{text}: {_ConnectErrorFilter.last_reason}"
        _ConnectErrorFilter.last_reason = ""
    cause = error.__cause__ or error.__context__
    if isinstance(cause, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"TLS certificate verification failed ({cause or text}); check kafka.security.ca_file"
        )
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause}"
    return text
