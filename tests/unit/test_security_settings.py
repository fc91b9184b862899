"""Security settings: incomplete combinations are refused at start, and every client gets the
same protocol (issue 18, finding 6)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.kafka import client_kwargs
from app.security import faust_credentials, kafka_security, redis_options
from app.settings import Settings


@pytest.mark.parametrize(
    "kafka",
    [
        {"security_protocol": "SASL_SSL"},  # no mechanism, user or password
        {"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "PLAIN", "sasl_username": "u"},
        {"security_protocol": "SSL", "sasl_mechanism": "PLAIN"},  # SASL options without SASL
        {"security_protocol": "SSL", "ssl_certfile": "/c.pem"},  # a certificate without its key
        {"security_protocol": "TLS"},  # not a Kafka protocol
        {
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "GSSAPI",
            "sasl_username": "u",
            "sasl_password": "p",
        },
    ],
)
def test_incomplete_or_unknown_security_is_refused(kafka: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        Settings(kafka=kafka)


def test_ssl_builds_one_verifying_context_for_faust_and_aiokafka() -> None:
    s = Settings(kafka={"security_protocol": "SSL"})
    kw = client_kwargs(s)
    assert kw["security_protocol"] == "SSL"
    assert kw["ssl_context"].verify_mode == ssl.CERT_REQUIRED and kw["ssl_context"].check_hostname
    creds = faust_credentials(s)
    assert creds is not None and creds.protocol.value == "SSL"  # not plain text, as before the fix


def test_sasl_ssl_carries_the_context_and_the_secret_only_where_clients_need_it() -> None:
    s = Settings(
        kafka={
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": "SCRAM-SHA-512",
            "sasl_username": "nba",
            "sasl_password": "pw-1",
            "ssl_check_hostname": False,
        }
    )
    kw = kafka_security(s)
    assert kw["sasl_plain_password"] == "pw-1" and not kw["ssl_context"].check_hostname
    creds = faust_credentials(s)
    assert creds is not None and creds.protocol.value == "SASL_SSL"
    assert "pw-1" not in s.model_dump_json() and "pw-1" not in repr(creds)


def test_redis_tls_options_only_with_rediss(tmp_path: Path) -> None:
    plain = redis_options(Settings(redis={"password": "r-1"}))
    assert plain == {"password": "r-1", "username": None}
    tls = redis_options(
        Settings(redis={"url": "rediss://h:6380/0", "ssl_ca_certs": str(tmp_path / "ca.pem")})
    )
    assert tls["ssl_ca_certs"] == str(tmp_path / "ca.pem") and tls["ssl_cert_reqs"] == "required"
