"""The fault suite's world: its own Kafka broker and Redis (so that stopping them disturbs no
other test), a deployment of the worker on them, an ordered producer, and the faults.

Clocks: fault times, timeouts and recovery durations are wall-clock (``time.monotonic``), the
only clock a fault has; the events themselves carry event time and are replayed history.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.faults.stream import LANES, Input, future_dated, oversized, poison
from tests.integration.conftest import ROOT, Deployment, Worker, free_port

KINDS = (
    "sigkill_before_commit",
    "sigkill_after_commit",
    "sigstop",
    "broker_stop",
    "broker_kill",
    "redis_stop",
    "redis_flush",
    "worker_join_leave",
    "poison",
    "oversized",
    "future_dated",
    "store_deleted",
)
SESSION_TIMEOUT_S = 6.0
FROZEN = {  # the learner learns but never publishes: decisions score with no model, as offline
    "NBA_SEGMENTS__SNAPSHOT_EVERY": "1000000000",
    "NBA_SEGMENTS__SNAPSHOT_INTERVAL_S": "1000000000",
}


@dataclass
class Services:
    """A Kafka broker and a Redis server of the suite's own, on free loopback ports."""

    home: Path
    kafka_port: int = field(default_factory=free_port)
    controller_port: int = field(default_factory=free_port)
    redis_port: int = field(default_factory=free_port)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _env(self, name: str) -> dict[str, str]:
        if name == "kafka":  # the shared cache keeps the jars; data, config and pid are per port
            return {
                **os.environ,
                "KAFKA_PORT": str(self.kafka_port),
                "KAFKA_CONTROLLER_PORT": str(self.controller_port),
                "KAFKA_DATA_DIR": str(self.home / "kafka-data"),
            }
        # redis.sh keeps one pid file per cache directory: a directory of the suite's own
        return {**os.environ, "REDIS_PORT": str(self.redis_port), "NBA_LOCAL_CACHE": str(self.home / "redis")}

    def _script(self, name: str, cmd: str, check: bool = True) -> None:
        subprocess.run(
            [str(ROOT / f"deploy/local/{name}.sh"), cmd],
            env=self._env(name),
            check=check,
            capture_output=True,
        )

    def broker_start(self) -> None:
        self._script("kafka", "start")

    def broker_stop(self) -> None:
        self._script("kafka", "stop")

    def broker_kill(self) -> None:
        cache = Path(os.environ.get("NBA_LOCAL_CACHE", ROOT / "deploy/local/.cache"))
        pidfile = cache / f"kafka-{self.kafka_port}.pid"
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGKILL)
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        pidfile.unlink(missing_ok=True)

    def redis_start(self) -> None:
        self._script("redis", "start")

    def redis_stop(self) -> None:
        self._script("redis", "stop")

    def start(self) -> None:
        self.redis_start()
        self.broker_start()

    def stop(self) -> None:
        for name in ("kafka", "redis"):
            self._script(name, "stop", check=False)
        shutil.rmtree(self.home / "kafka-data", ignore_errors=True)


class OrderedProducer:
    """Sends records one at a time and retries each until the broker has it, so that every
    lane's order on the broker is the order given, through broker outages. A retry after a
    timeout may write a record twice: the checker reads what the broker holds."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap, self.prefix = bootstrap, prefix
        self.gate = asyncio.Event()
        self.gate.set()
        self.sent = 0
        self.retries = 0
        self._producer: AIOKafkaProducer | None = None

    async def _client(self) -> AIOKafkaProducer:
        if self._producer is None:
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                request_timeout_ms=10_000,
                max_request_size=2**20,
            )
            await self._producer.start()
        return self._producer

    async def send(self, inp: Input) -> None:
        while True:
            await self.gate.wait()
            try:
                producer = await self._client()
                await asyncio.wait_for(
                    producer.send_and_wait(self.prefix + inp.topic, inp.value, key=inp.key), timeout=15
                )
                self.sent += 1
                return
            except Exception:  # the broker is down or moving leaders: try again
                self.retries += 1
                await self.close()
                await asyncio.sleep(0.5)

    async def run(self, inputs: list[Input], seconds: float) -> None:
        started = time.monotonic()
        for i, inp in enumerate(inputs):
            ahead = started + i * seconds / len(inputs) - time.monotonic()
            if ahead > 0:
                await asyncio.sleep(ahead)
            await self.send(inp)

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), timeout=10)


async def offsets(
    bootstrap: str, group: str, prefix: str, partitions: int
) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]] | None:
    """The lanes' end offsets and the group's committed offsets (``None``: broker unreachable)."""
    tps = [TopicPartition(prefix + t, p) for t in LANES for p in range(partitions)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), timeout=5)
        got = await asyncio.wait_for(admin.list_consumer_group_offsets(group), timeout=5)
        await asyncio.wait_for(consumer.start(), timeout=5)
        ends = await asyncio.wait_for(consumer.end_offsets(tps), timeout=5)
    except Exception:
        return None
    finally:
        for close in (admin.close, consumer.stop):
            with contextlib.suppress(Exception):
                await asyncio.wait_for(close(), timeout=5)
    return dict(ends), {tp: got[tp].offset if tp in got else 0 for tp in tps}


async def lag(bootstrap: str, group: str, prefix: str, partitions: int) -> int | None:
    """Records on the lanes that the group has not committed past (``None``: broker unreachable)."""
    got = await offsets(bootstrap, group, prefix, partitions)
    if got is None:
        return None
    ends, committed = got
    return sum(max(0, end - committed[tp]) for tp, end in ends.items())


async def recovery(
    c: Ctx, fault: Fault, before: dict[TopicPartition, int] | None, timeout: float = 300
) -> None:
    """Seconds from the fault until the group has committed everything on the lanes before it
    (``before``: the lanes' end offsets just before the fault; read later if the broker was down)."""
    while before is None and time.monotonic() < fault.injected_at + timeout:
        got = await offsets(c.dep.bootstrap, c.dep.app_id, c.dep.prefix, c.dep.partitions)
        before = got[0] if got else None
        if before is None:
            await asyncio.sleep(0.5)
    while before is not None and time.monotonic() < fault.injected_at + timeout:
        got = await offsets(c.dep.bootstrap, c.dep.app_id, c.dep.prefix, c.dep.partitions)
        if got is not None and all(got[1][tp] >= end for tp, end in before.items()):
            fault.recovered_s = time.monotonic() - fault.injected_at
            return
        await asyncio.sleep(0.25)


@dataclass
class Fault:
    kind: str
    at_s: float  # seconds after the stream starts
    injected_at: float = 0.0  # time.monotonic()
    recovered_s: float | None = None
    note: str = ""


@dataclass
class Ctx:
    """What a fault acts on."""

    services: Services
    dep: Deployment
    worker: Worker
    producer: OrderedProducer
    rng: random.Random
    extra_inputs: list[Input]
    tag: str
    redis: aioredis.Redis
    left: set[str] = field(default_factory=set)
    """Workers that left on purpose (their exit is not a crash)."""


async def _restart(w: Worker) -> None:
    w.start()
    await w.ready(timeout=180)


async def sigkill_before_commit(c: Ctx) -> str:
    c.worker.kill(signal.SIGKILL)  # mid-stream: its last half second of work is not committed
    await _restart(c.worker)
    return ""


async def sigkill_after_commit(c: Ctx) -> str:
    c.producer.gate.clear()  # hold the stream until the worker has committed all it has read
    try:
        group, deadline, left = c.dep.app_id, time.monotonic() + 60, None
        while time.monotonic() < deadline:
            left = await lag(c.dep.bootstrap, group, c.dep.prefix, c.dep.partitions)
            if left == 0:
                break
            await asyncio.sleep(0.3)
        await asyncio.sleep(c.rng.uniform(0, 0.5))
        c.worker.kill(signal.SIGKILL)
    finally:
        c.producer.gate.set()
    await _restart(c.worker)
    return f"lag at kill {left}"


async def sigstop(c: Ctx) -> str:
    assert c.worker.proc is not None
    pause = SESSION_TIMEOUT_S + c.rng.uniform(2, 6)
    os.killpg(c.worker.proc.pid, signal.SIGSTOP)
    await asyncio.sleep(pause)
    os.killpg(c.worker.proc.pid, signal.SIGCONT)
    return f"stopped {pause:.1f}s"


async def _outage(stop: Callable[[], None], start: Callable[[], None], down: float) -> str:
    """Stop a dependency, leave it down for ``down`` seconds, start it again."""
    await asyncio.to_thread(stop)
    await asyncio.sleep(down)
    await asyncio.to_thread(start)
    return f"down {down:.1f}s"


async def broker_stop(c: Ctx) -> str:
    return await _outage(c.services.broker_stop, c.services.broker_start, c.rng.uniform(8, 15))


async def broker_kill(c: Ctx) -> str:
    return await _outage(c.services.broker_kill, c.services.broker_start, c.rng.uniform(2, 8))


async def redis_stop(c: Ctx) -> str:  # no persistence: Redis comes back empty
    return await _outage(c.services.redis_stop, c.services.redis_start, c.rng.uniform(10, 20))


async def redis_flush(c: Ctx) -> str:
    await c.redis.flushall()
    return ""


async def worker_join_leave(c: Ctx) -> str:
    other = c.dep.worker(f"w{len(c.dep.workers) + 1}")
    other.start()
    await other.ready(timeout=180)
    await asyncio.sleep(c.rng.uniform(3, 8))
    c.left.add(other.name)
    other.stop()  # SIGTERM: it leaves the group
    assert other.proc is not None
    await asyncio.to_thread(other.proc.wait, 60)
    return other.name


async def _send_bad(c: Ctx, inputs: list[Input]) -> str:
    c.extra_inputs.extend(inputs)
    for inp in inputs:
        await c.producer.send(inp)
    return f"{len(inputs)} records"


async def poison_fault(c: Ctx) -> str:
    return await _send_bad(c, poison(c.rng, 12, f"{c.tag}{len(c.extra_inputs)}"))


async def oversized_fault(c: Ctx) -> str:
    return await _send_bad(c, oversized(c.rng, 2, f"{c.tag}{len(c.extra_inputs)}"))


async def future_dated_fault(c: Ctx) -> str:
    return await _send_bad(c, future_dated(c.rng, 4, f"{c.tag}{len(c.extra_inputs)}"))


async def store_deleted(c: Ctx) -> str:
    c.worker.kill(signal.SIGKILL)
    shutil.rmtree(c.dep.tmp / f"data-{c.worker.name}", ignore_errors=True)  # tables from the changelogs
    await _restart(c.worker)
    return ""


INJECT: dict[str, Callable[[Ctx], Awaitable[str]]] = {
    "sigkill_before_commit": sigkill_before_commit,
    "sigkill_after_commit": sigkill_after_commit,
    "sigstop": sigstop,
    "broker_stop": broker_stop,
    "broker_kill": broker_kill,
    "redis_stop": redis_stop,
    "redis_flush": redis_flush,
    "worker_join_leave": worker_join_leave,
    "poison": poison_fault,
    "oversized": oversized_fault,
    "future_dated": future_dated_fault,
    "store_deleted": store_deleted,
}
assert set(INJECT) == set(KINDS)


def schedule(seed: int, runs: int = 20) -> list[list[str]]:
    """The fault kinds of each run: 2 or 3 per run, every kind at least twice over 20 runs
    (each kind once per 12 slots, the slots shuffled by the seed, a third fault drawn at random)."""
    rng = random.Random(seed)
    slots: list[str] = []
    while len(slots) < 2 * runs:
        block = list(KINDS)
        rng.shuffle(block)
        slots += block
    plan = [slots[2 * i : 2 * i + 2] for i in range(runs)]
    for kinds in plan:
        if rng.random() < 0.5:
            kinds.append(rng.choice([k for k in KINDS if k not in kinds]))
        # two faults of one kind in a run are allowed by the slots; keep a run's kinds distinct
    return [list(dict.fromkeys(k)) for k in plan]


def fault_times(rng: random.Random, kinds: list[str], seconds: float) -> list[Fault]:
    """When each fault starts: spread over the stream's first 80 %, in the seed's order."""
    times = sorted(rng.uniform(0.1 * seconds, 0.8 * seconds) for _ in kinds)
    return [Fault(kind, t) for kind, t in zip(kinds, times, strict=True)]
