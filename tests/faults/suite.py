"""The fault suite: seeded runs of a known stream through the real worker while faults are
injected, each judged by the history checker (``tests.faults.checker``).

    python -m tests.faults.suite --runs 20 --out bench/results/faults.json   (``make faults``)

A run: its own topics, consumer group and Redis keys on the suite's own broker and Redis; one
worker; the stream sent over ``--seconds`` at an even pace; two or three faults at seeded
times; then wait until every valid event is in Redis (or a timeout), and check.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from app.demo import demo_catalog
from tests.faults.checker import INVARIANTS, check
from tests.faults.harness import (
    FROZEN,
    INJECT,
    KINDS,
    SESSION_TIMEOUT_S,
    Ctx,
    Fault,
    OrderedProducer,
    Services,
    fault_times,
    offsets,
    recovery,
    schedule,
)
from tests.faults.stream import PARTITIONS, known_stream
from tests.integration.conftest import Deployment, delete_topics, produce


@dataclass
class RunResult:
    run: int
    seed: int
    faults: list[Fault]
    violations: list[tuple[str, str]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    caught: dict[str, set[str]] = field(default_factory=dict)
    """With ``self_test``: the invariants each deliberately wrong history broke."""


def _settings_env(dep: Deployment) -> dict[str, str]:
    return {k: v for k, v in dep.env().items() if k.startswith("NBA_")}


async def _all_mirrored(redis: aioredis.Redis, dep: Deployment, want: dict[str, int]) -> int:
    """Users whose Redis profile does not hold all their distinct events yet."""
    short = 0
    for user, n in want.items():
        raw = await redis.get(f"{dep.redis_prefix}profile:u:{user}")
        short += raw is None or orjson.loads(raw).get("events") != n
    return short


async def run_one(
    services: Services,
    home: Path,
    run: int,
    seed: int,
    kinds: list[str],
    *,
    users: int = 120,
    events_per_user: int = 20,
    seconds: float = 25.0,
    self_test: bool = False,
) -> RunResult:
    """One seeded run; with ``self_test`` the checker also judges two histories made wrong on
    purpose (an input that was never sent, an accepted event the offline engine forgets), to
    show that it can fail."""
    started = time.monotonic()
    rng = random.Random(seed)
    tmp = home / f"run-{run:02d}"
    tmp.mkdir(parents=True, exist_ok=True)
    dep = Deployment(tmp, partitions=PARTITIONS, bootstrap=services.bootstrap)
    dep.extra.update(FROZEN)
    dep.extra.update(
        NBA_REDIS__URL=services.redis_url,
        NBA_WORKER__SESSION_TIMEOUT_S=str(SESSION_TIMEOUT_S),
        NBA_REDIS__FLUSH_INTERVAL_S="0.2",
    )
    tag = f"{run:02d}{seed % 1000:03d}"
    inputs = known_stream(seed, users, events_per_user, tag)
    faults = fault_times(rng, kinds, seconds)
    result = RunResult(run, seed, faults)
    redis = aioredis.Redis.from_url(services.redis_url)
    producer = OrderedProducer(dep.bootstrap, dep.prefix)
    exits: list[str] = []
    try:
        dep.create_topics()
        catalog = [
            (dep.topic("catalog.items"), i.item_id.encode(), i.model_dump_json().encode())
            for i in demo_catalog()
        ]
        await produce(dep.bootstrap, catalog)
        worker = dep.worker("w1")
        worker.start()
        await worker.ready(timeout=180)
        ctx = Ctx(services, dep, worker, producer, rng, [], tag, redis)

        async def watch() -> None:  # a worker that dies without being killed by a fault
            while True:
                for w in dep.workers:
                    if w.name not in ctx.left and not w.alive() and w.proc is not None:
                        exits.append(f"{w.name} exited with {w.proc.returncode}: {w.log.read_text()[-1500:]}")
                        ctx.left.add(w.name)
                await asyncio.sleep(0.5)

        async def inject(fault: Fault, t0: float) -> None:
            await asyncio.sleep(max(0.0, t0 + fault.at_s - time.monotonic()))
            got = await offsets(dep.bootstrap, dep.app_id, dep.prefix, dep.partitions)
            fault.injected_at = time.monotonic()
            measure = asyncio.create_task(recovery(ctx, fault, got[0] if got else None))
            fault.note = await INJECT[fault.kind](ctx)
            await measure

        watcher = asyncio.create_task(watch())
        t0 = time.monotonic()
        stream = asyncio.create_task(producer.run(inputs, seconds))
        # faults run one after another (a fault that restarts the worker finishes before the next)
        for fault in faults:
            await inject(fault, t0)
        await stream
        want: Counter[str] = Counter()
        seen_ids: set[tuple[str, str]] = set()
        for inp in inputs:
            if inp.user and inp.event_id and (inp.user, inp.event_id) not in seen_ids:
                seen_ids.add((inp.user, inp.event_id))
                want[inp.user] += 1
        deadline = time.monotonic() + 240
        short = await _all_mirrored(redis, dep, want)
        while short and time.monotonic() < deadline:
            await asyncio.sleep(1)
            short = await _all_mirrored(redis, dep, want)
        result.counts["users_short_at_end"] = short
        await asyncio.sleep(2)  # the changelog's last writes
        watcher.cancel()
        for k, v in _settings_env(dep).items():
            os.environ[k] = v
        from app.settings import Settings

        judge = {
            "settings": Settings(),
            "bootstrap": dep.bootstrap,
            "prefix": dep.prefix,
            "app_id": dep.app_id,
            "redis": redis,
            "redis_prefix": dep.redis_prefix,
            "exits": exits,
        }
        verdict = await check(inputs=inputs + ctx.extra_inputs, **judge)
        if self_test:
            never_sent = known_stream(seed + 1, 1, 1, f"{tag}never")
            wrong = await check(inputs=inputs + ctx.extra_inputs + never_sent, **judge)
            result.caught["input_never_sent"] = {i for i, _ in wrong.violations}
            wrong = await check(inputs=inputs + ctx.extra_inputs, forget=len(inputs) // 2, **judge)
            result.caught["event_forgotten_offline"] = {i for i, _ in wrong.violations}
        result.violations = verdict.violations
        result.counts.update(verdict.counts)
        result.counts["producer_retries"] = producer.retries
    finally:
        for w in dep.workers:
            w.kill()
        await producer.close()
        await redis.aclose()
        if not (result.violations and os.environ.get("NBA_FAULTS_KEEP") == "1"):  # to inspect a failed run
            with contextlib.suppress(Exception):
                await delete_topics(dep.bootstrap, dep.prefix, dep.app_id)
    result.seconds = time.monotonic() - started
    return result


def _percentile(xs: list[float], q: float) -> float | None:
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0]
    return float(statistics.quantiles(xs, n=100, method="inclusive")[int(q) - 1])


def summary(results: list[RunResult]) -> dict[str, Any]:
    """The figures of ``bench/results/faults.json`` (exactly the keys the issue names)."""
    recovered = [f.recovered_s for r in results for f in r.faults if f.recovered_s is not None]
    return {
        "runs": len(results),
        "faults_by_kind": {k: sum(f.kind == k for r in results for f in r.faults) for k in KINDS},
        "invariants_checked": list(INVARIANTS),
        "violations": [{"run": r.run, "invariant": i, "detail": d} for r in results for i, d in r.violations],
        "recovery_p50_s": _percentile(recovered, 50),
        "recovery_p99_s": _percentile(recovered, 99),
    }


async def suite(runs: int, seed: int, only: list[int] | None = None, **kw: Any) -> list[RunResult]:
    plan = schedule(seed, runs)
    home = Path(tempfile.mkdtemp(prefix="nba-faults-"))
    services = Services(home)
    await asyncio.to_thread(services.start)
    results = []
    try:
        for run, kinds in enumerate(plan):
            if only is not None and run not in only:
                continue
            r = await run_one(services, home, run, seed * 1000 + run, kinds, **kw)
            results.append(r)
            faults = ", ".join(
                f"{f.kind}@{f.at_s:.0f}s→{f.recovered_s:.1f}s"
                if f.recovered_s is not None
                else f"{f.kind}@{f.at_s:.0f}s→?"
                for f in r.faults
            )
            print(f"run {run:2d} ({r.seconds:.0f}s): {faults}; violations {len(r.violations)}", flush=True)
            print(f"    {dict(r.counts)}", flush=True)
            for inv, detail in r.violations:
                print(f"    {inv}: {detail}", flush=True)
    finally:
        await asyncio.to_thread(services.stop)
    return results


def quiet_clients() -> None:
    """The Kafka and Redis clients' own errors while a fault lasts are expected: keep them out."""
    for name in ("aiokafka", "kafka"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", type=int, nargs="*", help="run only these run numbers of the plan")
    ap.add_argument("--out", type=Path, default=Path("bench/results/faults.json"))
    args = ap.parse_args(argv)
    quiet_clients()
    started = time.monotonic()
    results = asyncio.run(suite(args.runs, args.seed, args.only))
    report = summary(results)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    print(
        f"{len(results)} runs in {time.monotonic() - started:.0f}s, {len(report['violations'])} violations; "
        f"recovery p50 {report['recovery_p50_s']} s, p99 {report['recovery_p99_s']} s -> {args.out}"
    )
    return 1 if report["violations"] else 0


if __name__ == "__main__":
    sys.exit(main())
