"""A secured Kafka broker and a secured Redis for the security tests, on loopback.

Certificates are made here with ``openssl`` (a throw-away CA, a server certificate for
127.0.0.1/localhost, a client certificate) and ``keytool`` (the broker's trust store). The
broker is a second real Kafka (deploy/local/kafka.sh on free ports) with four listeners:

* ``PLAINTEXT`` (the controller and the start script's readiness check only),
* ``SSL`` that requires a client certificate (mutual TLS),
* ``SCRAM``: SASL_SSL with SCRAM-SHA-512 (its user added by ``kafka-storage format --add-scram``),
* ``PLAINSASL``: SASL_SSL with PLAIN (its user in the listener's JAAS configuration).

Redis is Debian's ``redis-server`` with TLS only (no plain port) and a password.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import ROOT, free_port

STORE_PASSWORD = "store-secret-1"
SCRAM_USER, SCRAM_PASSWORD = "nba-scram", "scram-secret-1"
PLAIN_USER, PLAIN_PASSWORD = "nba-plain", "plain-secret-1"
REDIS_PASSWORD = "redis-secret-1"


def _run(*cmd: str, cwd: Path) -> None:
    subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)


@dataclass(frozen=True)
class Certificates:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    server_p12: Path
    trust_p12: Path


def make_certificates(d: Path) -> Certificates:
    d.mkdir(parents=True, exist_ok=True)
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-days", "2", "-subj", "/CN=nba-test-ca", cwd=d)  # fmt: skip
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("server", "client"):
        _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN=nba-test-{name}", cwd=d)  # fmt: skip
        _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext",
             cwd=d)  # fmt: skip
    _run("openssl", "pkcs12", "-export", "-in", "server.crt", "-inkey", "server.key", "-certfile", "ca.crt",
         "-name", "broker", "-out", "server.p12", "-passout", f"pass:{STORE_PASSWORD}", cwd=d)  # fmt: skip
    _run("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.crt", "-keystore", "trust.p12",
         "-storetype", "PKCS12", "-storepass", STORE_PASSWORD, cwd=d)  # fmt: skip
    return Certificates(
        ca=d / "ca.crt",
        server_cert=d / "server.crt",
        server_key=d / "server.key",
        client_cert=d / "client.crt",
        client_key=d / "client.key",
        server_p12=d / "server.p12",
        trust_p12=d / "trust.p12",
    )


@dataclass(frozen=True)
class SecureBroker:
    plaintext: int
    ssl: int
    scram: int
    plain: int
    certs: Certificates

    def bootstrap(self, port: int) -> str:
        return f"127.0.0.1:{port}"


def _broker_env(d: Path, plaintext: int, controller: int) -> dict[str, str]:
    return {
        **os.environ,
        "KAFKA_PORT": str(plaintext),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_DATA_DIR": str(d / "data"),
        "KAFKA_EXTRA_PROPERTIES": str(d / "secure.properties"),
        "KAFKA_FORMAT_ARGS": f"--add-scram SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]",
    }


def start_broker(d: Path, certs: Certificates) -> tuple[SecureBroker, dict[str, str]]:
    plaintext, controller, ssl_port, scram, plain = (free_port() for _ in range(5))
    h = "127.0.0.1"
    jaas_scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    jaas_plain = (
        "org.apache.kafka.common.security.plain.PlainLoginModule required "
        f'user_{PLAIN_USER}="{PLAIN_PASSWORD}";'
    )
    (d / "secure.properties").write_text(
        f"""
listeners=PLAINTEXT://{h}:{plaintext},CONTROLLER://{h}:{controller},SSL://{h}:{ssl_port},SCRAM://{h}:{scram},PLAINSASL://{h}:{plain}
advertised.listeners=PLAINTEXT://{h}:{plaintext},SSL://{h}:{ssl_port},SCRAM://{h}:{scram},PLAINSASL://{h}:{plain}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL,SCRAM:SASL_SSL,PLAINSASL:SASL_SSL
ssl.keystore.type=PKCS12
ssl.keystore.location={certs.server_p12}
ssl.keystore.password={STORE_PASSWORD}
ssl.key.password={STORE_PASSWORD}
ssl.truststore.type=PKCS12
ssl.truststore.location={certs.trust_p12}
ssl.truststore.password={STORE_PASSWORD}
listener.name.ssl.ssl.client.auth=required
listener.name.scram.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.scram.scram-sha-512.sasl.jaas.config={jaas_scram}
listener.name.plainsasl.sasl.enabled.mechanisms=PLAIN
listener.name.plainsasl.plain.sasl.jaas.config={jaas_plain}
"""
    )
    env = _broker_env(d, plaintext, controller)
    subprocess.run([str(ROOT / "deploy/local/kafka.sh"), "start"], env=env, check=True, capture_output=True)
    return SecureBroker(plaintext, ssl_port, scram, plain, certs), env


def stop_broker(env: dict[str, str]) -> None:
    subprocess.run([str(ROOT / "deploy/local/kafka.sh"), "stop"], env=env, check=False, capture_output=True)
    shutil.rmtree(env["KAFKA_DATA_DIR"], ignore_errors=True)


def start_redis(d: Path, certs: Certificates) -> tuple[int, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
         "--tls-cert-file", str(certs.server_cert), "--tls-key-file", str(certs.server_key),
         "--tls-ca-cert-file", str(certs.ca), "--tls-auth-clients", "no",
         "--requirepass", REDIS_PASSWORD, "--save", "", "--appendonly", "no", "--dir", str(d)],
        stdout=(d / "redis.log").open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if "Ready to accept connections" in (d / "redis.log").read_text(errors="replace"):
            return port, proc
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"TLS redis did not start:\n{(d / 'redis.log').read_text()[-2000:]}")
