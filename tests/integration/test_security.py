"""Kafka over SSL (mutual TLS), SASL_SSL/SCRAM-SHA-512 and SASL_SSL/PLAIN, and Redis over TLS with a
password, for every client the service creates (issue 18, finding 6).

One secured broker and one TLS Redis (tests/integration/secure.py) serve the whole session. For
each protocol: ``nba topics`` creates the topics, a worker (its consumer, producer, tables, the
learner and the followers of the model, catalog and config topics) processes what ``nba demo``
(a CLI producer) sends and answers with an action, and the profiles land in the TLS Redis. The
broker has no plain-text listener on those ports, so a client that fell back to plain text
could not connect at all. Wrong credentials are refused.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import redis.asyncio as aioredis

from tests.integration import secure
from tests.integration.conftest import ROOT, Deployment, wait_for


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> secure.Certificates:
    return secure.make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def broker(
    tmp_path_factory: pytest.TempPathFactory, certs: secure.Certificates
) -> Iterator[secure.SecureBroker]:
    b, env = secure.start_broker(tmp_path_factory.mktemp("secure-kafka"), certs)
    yield b
    secure.stop_broker(env)


@pytest.fixture(scope="session")
def tls_redis(tmp_path_factory: pytest.TempPathFactory, certs: secure.Certificates) -> Iterator[int]:
    port, proc = secure.start_redis(tmp_path_factory.mktemp("tls-redis"), certs)
    yield port
    proc.terminate()
    proc.wait(timeout=30)


def _kafka_env(broker: secure.SecureBroker, protocol: str) -> dict[str, str]:
    ca = {"NBA_KAFKA__SSL_CAFILE": str(broker.certs.ca)}
    if protocol == "SSL":
        return {
            "NBA_KAFKA__BOOTSTRAP": broker.bootstrap(broker.ssl),
            "NBA_KAFKA__SECURITY_PROTOCOL": "SSL",
            "NBA_KAFKA__SSL_CERTFILE": str(broker.certs.client_cert),
            "NBA_KAFKA__SSL_KEYFILE": str(broker.certs.client_key),
            **ca,
        }
    port, mechanism, user, password = {
        "SCRAM-SHA-512": (broker.scram, "SCRAM-SHA-512", secure.SCRAM_USER, secure.SCRAM_PASSWORD),
        "PLAIN": (broker.plain, "PLAIN", secure.PLAIN_USER, secure.PLAIN_PASSWORD),
    }[protocol]
    return {
        "NBA_KAFKA__BOOTSTRAP": broker.bootstrap(port),
        "NBA_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
        "NBA_KAFKA__SASL_MECHANISM": mechanism,
        "NBA_KAFKA__SASL_USERNAME": user,
        "NBA_KAFKA__SASL_PASSWORD": password,
        **ca,
    }


def _redis_env(port: int, certs: secure.Certificates) -> dict[str, str]:
    return {
        "NBA_REDIS__URL": f"rediss://127.0.0.1:{port}/0",
        "NBA_REDIS__PASSWORD": secure.REDIS_PASSWORD,
        "NBA_REDIS__SSL_CA_CERTS": str(certs.ca),
    }


@pytest.mark.parametrize("protocol", ["SSL", "SCRAM-SHA-512", "PLAIN"])
async def test_every_client_works_over_tls_and_sasl(
    protocol: str, broker: secure.SecureBroker, tls_redis: int, tmp_path: Path
) -> None:
    kafka = _kafka_env(broker, protocol)
    dep = Deployment(tmp_path, partitions=2, bootstrap=kafka["NBA_KAFKA__BOOTSTRAP"])
    dep.extra.update(kafka)
    dep.extra.update(_redis_env(tls_redis, broker.certs))
    dep.create_topics()  # nba topics: the admin client
    worker = dep.worker()
    worker.start()
    client = aioredis.Redis.from_url(
        f"rediss://127.0.0.1:{tls_redis}/0", password=secure.REDIS_PASSWORD, ssl_ca_certs=str(broker.certs.ca)
    )
    try:
        await worker.ready(timeout=120)  # readiness: Kafka metadata, Redis, the model store
        demo = subprocess.run(
            [
                sys.executable,
                "-m",
                "app.cli",
                "demo",
                "--users",
                "5",
                "--events-per-user",
                "6",
                "--timeout",
                "120",
            ],
            env=dep.env(),
            cwd=ROOT,
            capture_output=True,
            timeout=200,
        )
        assert demo.returncode == 0, demo.stderr.decode()[-3000:] + worker.log.read_text()[-3000:]
        out = demo.stdout.decode()
        action = orjson.loads(out[out.index("{") : out.rindex("}") + 1])
        assert action["action_id"] and action["user_id"]

        async def mirrored() -> bool | int:
            keys = [k async for k in client.scan_iter(match=f"{dep.redis_prefix}profile:*")]
            return len(keys) >= 5 or len(keys)

        await wait_for(mirrored, 60, "profiles in the TLS Redis")
    finally:
        await client.aclose()
    log = worker.log.read_text()
    for secret in (
        secure.SCRAM_PASSWORD,
        secure.PLAIN_PASSWORD,
        secure.REDIS_PASSWORD,
        secure.STORE_PASSWORD,
    ):
        assert secret not in log


def test_wrong_credentials_are_refused(broker: secure.SecureBroker, tmp_path: Path) -> None:
    kafka = _kafka_env(broker, "SCRAM-SHA-512")
    kafka["NBA_KAFKA__SASL_PASSWORD"] = "not-the-password"
    dep = Deployment(tmp_path, bootstrap=kafka["NBA_KAFKA__BOOTSTRAP"], extra=kafka)
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "topics"], env=dep.env(), cwd=ROOT, capture_output=True, timeout=120
    )
    assert done.returncode != 0
    assert b"not-the-password" not in done.stdout + done.stderr
