"""Security options of every client the service creates, built once from settings.

Kafka: ``security_protocol`` PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL (PLAIN, SCRAM-SHA-256,
SCRAM-SHA-512), with a TLS context from ``ssl_cafile`` (and ``ssl_certfile``/``ssl_keyfile``
when brokers require client certificates). The same options go to Faust (the worker's consumer,
producer and admin client) and to every aiokafka client outside Faust (``nba topics``, the CLI
producers, the model, catalog and config followers, readiness): one protocol for all of them, so
no client can fall back to plain text while the others use TLS.

Redis: a ``rediss://`` URL turns TLS on; ``username``/``password`` authenticate.

>>> from app.settings import Settings
>>> kafka_security(Settings())
{'security_protocol': 'PLAINTEXT'}
>>> s = Settings(kafka={"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
...                     "sasl_username": "nba", "sasl_password": "s3cret"})
>>> sorted(kafka_security(s))
['sasl_mechanism', 'sasl_plain_password', 'sasl_plain_username', 'security_protocol']
>>> faust_credentials(s)
<SASLCredentials: username=nba>
>>> redis_options(Settings())
{'password': None, 'username': None}
"""

from __future__ import annotations

import ssl
from typing import Any

import faust
from aiokafka.helpers import create_ssl_context
from faust.types.auth import CredentialsT
from pydantic import SecretStr

from app.settings import KafkaSettings, Settings


def kafka_ssl_context(k: KafkaSettings) -> ssl.SSLContext:
    """The TLS context of every Kafka client (verifies the broker; presents a client cert if set)."""
    context: ssl.SSLContext = create_ssl_context(
        cafile=str(k.ssl_cafile) if k.ssl_cafile else None,
        certfile=str(k.ssl_certfile) if k.ssl_certfile else None,
        keyfile=str(k.ssl_keyfile) if k.ssl_keyfile else None,
        password=_secret(k.ssl_key_password),
    )
    context.check_hostname = k.ssl_check_hostname
    return context


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _context(k: KafkaSettings) -> ssl.SSLContext | None:
    return kafka_ssl_context(k) if k.security_protocol in ("SSL", "SASL_SSL") else None


def kafka_security(settings: Settings) -> dict[str, Any]:
    """aiokafka keyword arguments for the configured protocol (secrets in clear: never log them)."""
    k = settings.kafka
    kw: dict[str, Any] = {"security_protocol": k.security_protocol}
    if (context := _context(k)) is not None:
        kw["ssl_context"] = context
    if k.sasl_mechanism:
        kw["sasl_mechanism"] = k.sasl_mechanism
        kw["sasl_plain_username"] = k.sasl_username
        kw["sasl_plain_password"] = _secret(k.sasl_password)
    return kw


def faust_credentials(settings: Settings) -> CredentialsT | None:
    """Faust's credentials for the same options (``None``: plain text)."""
    k = settings.kafka
    context = _context(k)
    if k.sasl_mechanism:
        return faust.SASLCredentials(
            username=k.sasl_username,
            password=_secret(k.sasl_password),
            mechanism=k.sasl_mechanism,
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def redis_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments of ``redis.asyncio.Redis.from_url`` besides the URL."""
    r = settings.redis
    kw: dict[str, Any] = {
        "password": _secret(r.password),
        "username": r.username,
    }
    if r.url.startswith("rediss://"):
        kw.update(
            ssl_ca_certs=str(r.ssl_ca_certs) if r.ssl_ca_certs else None,
            ssl_certfile=str(r.ssl_certfile) if r.ssl_certfile else None,
            ssl_keyfile=str(r.ssl_keyfile) if r.ssl_keyfile else None,
            ssl_check_hostname=r.ssl_check_hostname,
            ssl_cert_reqs="required",
        )
    return kw
