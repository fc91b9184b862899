"""Integration fixtures: the real Kafka broker and Redis started by deploy/local (never skipped),
and worker processes with their own topic prefix, consumer group, Redis prefix and web port."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parents[2]
BOOTSTRAP = os.environ.get("NBA_KAFKA__BOOTSTRAP", "127.0.0.1:9092")
REDIS_URL = os.environ.get("NBA_REDIS__URL", "redis://127.0.0.1:6379/0")


def _reachable(hostport: str) -> bool:
    host, port = hostport.rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def services() -> None:
    redis_hostport = REDIS_URL.split("//", 1)[1].split("/", 1)[0]
    missing = [name for name, hp in (("Kafka", BOOTSTRAP), ("Redis", redis_hostport)) if not _reachable(hp)]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} not reachable: start them with `make services` (make test does)"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Deployment:
    """One isolated deployment of the service: its own topics, group, Redis keys."""

    tmp: Path
    partitions: int = 4
    bootstrap: str = BOOTSTRAP
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        tag = uuid.uuid4().hex[:10]
        self.prefix = f"it{tag}."
        self.app_id = f"nba-it-{tag}"
        self.redis_prefix = f"it{tag}:"
        self.workers: list[Worker] = []

    def env(self, **over: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NBA_")}
        env.update(
            NBA_KAFKA__BOOTSTRAP=self.bootstrap,
            NBA_KAFKA__TOPIC_PREFIX=self.prefix,
            NBA_KAFKA__PARTITIONS=str(self.partitions),
            NBA_WORKER__APP_ID=self.app_id,
            NBA_WORKER__SESSION_TIMEOUT_S="6",
            NBA_WORKER__HEARTBEAT_INTERVAL_S="1",
            NBA_WORKER__COMMIT_INTERVAL_S="0.5",
            NBA_WORKER__LOGLEVEL="warning",
            NBA_REDIS__URL=REDIS_URL,
            NBA_REDIS__KEY_PREFIX=self.redis_prefix,
            # tests count the actions their users get: no control group unless a test asks for one
            NBA_DECISION__CONTROL_SHARE="0",
            NBA_DECISION__POLICY="rule",  # tests of the learned policy set "learned"
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra)
        env.update(over)
        return env

    def topic(self, name: str) -> str:
        return self.prefix + name

    def ingress(self, channel: str, etype: str) -> str:
        return f"{self.prefix}events.{channel}.{etype}"

    def worker(self, name: str = "w1") -> Worker:
        w = Worker(self, name, free_port())
        self.workers.append(w)
        return w

    def create_topics(self) -> None:
        subprocess.run(
            [sys.executable, "-m", "app.cli", "topics"],
            env=self.env(),
            cwd=ROOT,
            check=True,
            capture_output=True,
        )


@dataclass
class Worker:
    dep: Deployment
    name: str
    port: int
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.dep.tmp / f"{self.name}.log"

    def start(self) -> None:
        self.starts += 1
        env = self.dep.env(
            NBA_WORKER__WEB_PORT=str(self.port),
            NBA_WORKER__DATADIR=str(self.dep.tmp / f"data-{self.name}"),
        )
        with self.log.open("ab") as fh:
            fh.write(f"\n===== start {self.starts} =====\n".encode())
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker", "--no-create-topics"],
                env=env,
                cwd=ROOT,
                stdout=fh,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=60)

    def stop(self) -> None:
        if self.alive():
            self.kill(signal.SIGTERM)

    async def ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=3) as client:
            while time.monotonic() < deadline:
                assert self.alive(), f"worker {self.name} exited:\n{self.log.read_text()[-4000:]}"
                try:
                    if (await client.get(self.url + "/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.5)
        raise AssertionError(f"worker {self.name} not ready in {timeout}s:\n{self.log.read_text()[-4000:]}")


async def delete_topics(bootstrap: str, *prefixes: str) -> None:
    """Delete every topic whose name starts with one of ``prefixes`` (a test's own topics and
    Faust's changelogs), so that repeated runs do not pile partitions up on the local broker."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefixes)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    dep = Deployment(tmp_path)
    yield dep
    for w in dep.workers:
        w.kill()
    keep = os.environ.get("NBA_TEST_KEEP_TOPICS") == "1"  # to inspect a failed run's topics
    if not keep and _reachable(dep.bootstrap):  # a test may have stopped its own broker
        asyncio.run(delete_topics(dep.bootstrap, dep.prefix, dep.app_id))


@pytest_asyncio.fixture
async def redis_client() -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(REDIS_URL)
    yield client
    await client.aclose()


async def produce(
    bootstrap: str, records: list[tuple[str, bytes | None, bytes | None]], rate: float | None = None
) -> None:
    """Send ``records`` in order, at most ``rate`` records/s (wall time) if given.

    Every send is checked and a failed one is sent again (as a real producer retries): right
    after topics are created the broker may answer "not leader" long enough for aiokafka to give
    up on a batch, and a silently lost record would look like data loss in the worker.
    """
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    try:
        started = time.monotonic()
        pending = []
        for i, (topic, key, value) in enumerate(records):
            if rate:
                ahead = started + i / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            pending.append((await producer.send(topic, key=key, value=value), topic, key, value))
        await producer.flush()
        for _ in range(5):
            failed = []
            for fut, topic, key, value in pending:
                try:
                    await fut
                except Exception:
                    failed.append((topic, key, value))
            if not failed:
                return
            print(f"produce: re-sending {len(failed)} records that failed", flush=True)
            pending = [(await producer.send(t, key=k, value=v), t, k, v) for t, k, v in failed]
            await producer.flush()
        raise AssertionError(f"{len(pending)} records could not be produced")
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, *, until: int, timeout: float = 60.0) -> list[Any]:
    """Read ``topic`` from the beginning until ``until`` records or ``timeout`` seconds."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    out: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(out) < until and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                out.extend(records)
    finally:
        await consumer.stop()
    return out


async def profile(client: aioredis.Redis, dep: Deployment, canonical: str) -> dict[str, Any] | None:
    raw = await client.get(f"{dep.redis_prefix}profile:{canonical}")
    return orjson.loads(raw) if raw is not None else None


async def started_worker(dep: Deployment, name: str = "w1") -> Worker:
    """Create the deployment's topics, start one worker and wait until it is ready."""
    dep.create_topics()
    worker = dep.worker(name)
    worker.start()
    await worker.ready()
    return worker


def view_records(
    dep: Deployment,
    uid: str,
    start: datetime,
    n: int = 3,
    *,
    channel: str = "app",
    item: str = "c1",
    **extra: Any,
) -> list[tuple[str, bytes | None, bytes | None]]:
    """``n`` views of ``item`` by logged-in ``uid``, one second apart from ``start``: enough for
    the foundation rule to decide on the last one."""
    records: list[tuple[str, bytes | None, bytes | None]] = []
    for i in range(n):
        payload = {
            "event_id": f"{uid}-{i}",
            "type": "view",
            "channel": channel,
            "user_id": uid,
            "item_id": item,
            "occurred_at": (start + timedelta(seconds=i)).isoformat(),
            "view": {"duration_s": 60, "progress": 0.3},
            **extra,
        }
        records.append((dep.ingress(channel, "view"), uid.encode(), orjson.dumps(payload)))
    return records


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last is True:
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last}")
