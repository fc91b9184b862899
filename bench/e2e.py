"""End-to-end benchmark on the real broker (``make bench``; not part of the tests).

1. Backlog: produce N demo events from several channels, start one worker pinned to one core,
   and time how long it takes to apply them all: sustained events/s, worker CPU and peak RSS.
2. Latency: with the worker caught up, produce at a steady rate (half the measured throughput)
   and measure wall time from each trigger event's produce to its action's publish (p50, p99).
3. Ceiling: a plain aiokafka consume-and-produce passthrough over the same topics and events.

Prints a table and writes bench/results/e2e.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from app.demo import demo_events

ROOT = Path(__file__).resolve().parents[1]
CHANNELS = ("app", "web", "wechat", "weibo", "douyin", "zhihu")


def _records(
    prefix: str, n_users: int, per_user: int, seed: int, start_day: int = 5, tag: str = ""
) -> list[tuple[str, bytes, bytes, str]]:
    from datetime import UTC, datetime

    out = []
    start = datetime(2026, 1, start_day, tzinfo=UTC)
    for e in demo_events(n_users, per_user, CHANNELS, seed, start=start, tag=tag):
        out.append(
            (
                f"{prefix}events.{e.topic_channel}.{e.type}",
                e.key.encode(),
                orjson.dumps(e.payload),
                e.payload["event_id"],
            )
        )
    return out


async def _produce(bootstrap: str, records, rate: float | None = None) -> dict[str, float]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks=1, max_batch_size=256 * 1024)
    await producer.start()
    sent_at: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        for i, (topic, key, value, eid) in enumerate(records):
            if rate:
                lag = t0 + i / rate - time.monotonic()
                if lag > 0:
                    await asyncio.sleep(lag)
            sent_at[eid] = time.time()
            await producer.send(topic, key=key, value=value)
        await producer.flush()
    finally:
        await producer.stop()
    return sent_at


def _metric(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def _applied(url: str) -> float:
    async with httpx.AsyncClient(timeout=5) as c:
        text = (await c.get(url + "/metrics")).text
    return sum(
        _metric(text, n)
        for n in ("nba_events_applied_total", "nba_events_duplicate_total", "nba_events_late_total")
    )


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=3) as c:
        for _ in range(240):
            if proc.poll() is not None:
                raise SystemExit("worker exited")
            try:
                if (await c.get(url + "/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.5)
    raise SystemExit("worker not ready")


async def _passthrough(bootstrap: str, topics: list[str], out_topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=bootstrap,
        group_id=f"pt-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        max_poll_records=2000,
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks=1, max_batch_size=256 * 1024)
    await consumer.start()
    await producer.start()
    done, t0 = 0, None
    try:
        while done < n:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                if t0 is None:
                    t0 = time.monotonic()
                for r in records:
                    await producer.send(out_topic, key=r.key, value=r.value)
                    done += 1
        await producer.flush()
    finally:
        await consumer.stop()
        await producer.stop()
    return n / (time.monotonic() - (t0 or time.monotonic()))


async def main(args: argparse.Namespace) -> dict[str, object]:
    prefix = f"bench{uuid.uuid4().hex[:6]}."
    tmp = Path(tempfile.mkdtemp(prefix="nba-bench-"))
    port = 6190
    env = {k: v for k, v in os.environ.items() if not k.startswith("NBA_")}
    env.update(
        NBA_KAFKA__BOOTSTRAP=args.bootstrap,
        NBA_KAFKA__TOPIC_PREFIX=prefix,
        NBA_KAFKA__PARTITIONS=str(args.partitions),
        NBA_WORKER__APP_ID=f"nba-{prefix[:-1]}",
        NBA_WORKER__WEB_PORT=str(port),
        NBA_WORKER__DATADIR=str(tmp / "data"),
        NBA_WORKER__LOGLEVEL="warning",
        NBA_REDIS__KEY_PREFIX=f"{prefix[:-1]}:",
    )
    subprocess.run(
        [sys.executable, "-m", "app.cli", "topics"],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )

    users = args.events // args.per_user
    records = _records(prefix, users, args.per_user, seed=1)
    print(f"producing {len(records)} events of {users} users ...", flush=True)
    t = time.monotonic()
    await _produce(args.bootstrap, records)
    produce_s = time.monotonic() - t

    cmd = [sys.executable, "-m", "app.cli", "worker", "--no-create-topics"]
    if shutil.which("taskset"):
        cmd = ["taskset", "-c", "0", *cmd]
    log = (tmp / "worker.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    result: dict[str, object] = {
        "events": len(records),
        "users": users,
        "partitions": args.partitions,
        "producer_events_per_s": round(len(records) / produce_s),
    }
    try:
        await _wait_ready(url, proc)
        ps = psutil.Process(proc.pid)
        cpu0 = sum(ps.cpu_times()[:2])
        t0, peak_rss = time.monotonic(), 0
        while (done := await _applied(url)) < len(records):
            peak_rss = max(peak_rss, ps.memory_info().rss)
            if time.monotonic() - t0 > args.timeout:
                raise SystemExit(f"timeout: {done} of {len(records)} applied")
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - t0
        cpu = sum(ps.cpu_times()[:2]) - cpu0
        eps = len(records) / elapsed
        result.update(
            worker_events_per_s=round(eps),
            worker_cpu_s=round(cpu, 1),
            worker_cpu_util=round(cpu / elapsed, 2),
            worker_peak_rss_mb=round(peak_rss / 2**20, 1),
            backlog_seconds=round(elapsed, 1),
        )
        print(f"backlog: {eps:.0f} events/s", flush=True)

        # latency at a steady rate below capacity
        # other users, the next day: event time moves on as in a live day (a jump of weeks would
        # wake every silent backlog user through the due-time index at once, see bench/README.md)
        live = _records(prefix, args.latency_users, args.per_user, seed=2, start_day=6, tag="live")
        rate = max(50.0, eps / 2)
        consumer = AIOKafkaConsumer(
            f"{prefix}marketing.actions",
            bootstrap_servers=args.bootstrap,
            auto_offset_reset="latest",
            enable_auto_commit=False,
        )
        await consumer.start()
        await consumer.seek_to_end()
        sent_at = await _produce(args.bootstrap, live, rate=rate)
        latencies = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for recs in batch.values():
                for r in recs:
                    trig = orjson.loads(r.value).get("trigger_event_id")
                    if trig in sent_at:
                        latencies.append(r.timestamp / 1000 - sent_at[trig])
            if not batch and latencies:
                break
        await consumer.stop()
        latencies.sort()
        if latencies:
            result.update(
                latency_rate_events_per_s=round(rate),
                latency_actions=len(latencies),
                latency_p50_ms=round(1000 * latencies[len(latencies) // 2], 1),
                latency_p99_ms=round(1000 * latencies[int(len(latencies) * 0.99)], 1),
            )
    finally:
        proc.terminate()
        proc.wait(timeout=60)

    ingress = sorted({r[0] for r in records})
    pt = await _passthrough(args.bootstrap, ingress, f"{prefix}passthrough", len(records) + len(live))
    result["passthrough_events_per_s"] = round(pt)
    result["worker_to_passthrough_ratio"] = round(float(result["worker_events_per_s"]) / pt, 3)  # type: ignore[arg-type]
    admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)  # leave the local broker clean
    await admin.start()
    try:
        await admin.delete_topics(
            [t for t in await admin.list_topics() if t.startswith((prefix, f"nba-{prefix[:-1]}"))]
        )
    finally:
        await admin.close()
    return result


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--per-user", type=int, default=20)
    ap.add_argument("--latency-users", type=int, default=300)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--bootstrap", default=os.environ.get("NBA_KAFKA__BOOTSTRAP", "127.0.0.1:9092"))
    ap.add_argument("--timeout", type=float, default=1800)
    res = asyncio.run(main(ap.parse_args()))
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "e2e.json").write_bytes(orjson.dumps(res, option=orjson.OPT_INDENT_2))
    for k, v in res.items():
        print(f"{k:32s} {v}")
