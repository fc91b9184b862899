"""Redis can fail: an outage of 20 s and a Redis that comes back empty, then a ``FLUSHALL``
(issue 18, findings 1 and 5). The worker stays up and keeps applying events, ``/readyz`` says
Redis is down (then that it is being refilled), and every profile is copied back to Redis
without a rebalance.

Uses a Redis server of its own (a free port, started by deploy/local/redis.sh), so stopping and
flushing it disturbs no other test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from tests.integration.conftest import ROOT, Deployment, free_port, produce, profile, view_records, wait_for


def _redis(cmd: str, port: int, tmp: Path) -> None:
    env = {**os.environ, "REDIS_PORT": str(port), "NBA_LOCAL_CACHE": str(tmp / "redis")}
    subprocess.run([str(ROOT / "deploy/local/redis.sh"), cmd], env=env, check=True, capture_output=True)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[int]:
    port = free_port()
    _redis("start", port, tmp_path)
    yield port
    _redis("stop", port, tmp_path)


async def _readyz(url: str) -> dict[str, object] | None:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return dict((await client.get(url + "/readyz")).json())
    except (httpx.HTTPError, ValueError):
        return None


async def test_the_worker_survives_a_redis_outage_and_refills_a_redis_that_lost_its_data(
    own_redis: int, tmp_path: Path
) -> None:
    url = f"redis://127.0.0.1:{own_redis}/0"
    dep = Deployment(
        tmp_path,
        partitions=2,
        extra={
            "NBA_REDIS__URL": url,
            "NBA_REDIS__FLUSH_INTERVAL_S": "0.2",
            "NBA_SEGMENTS__SNAPSHOT_INTERVAL_S": "1",  # the learner writes neighbour lists often
        },
    )
    dep.create_topics()
    worker = dep.worker()
    worker.start()
    client = aioredis.Redis.from_url(url)
    try:
        await worker.ready()
        t0 = datetime(2026, 2, 1, tzinfo=UTC)
        users = [f"r{i}" for i in range(20)]
        await produce(dep.bootstrap, [r for u in users for r in view_records(dep, u, t0, item=f"c{u[-1]}")])

        async def all_mirrored(want: int = 3) -> bool | object:
            got = [await profile(client, dep, f"u:{u}") for u in users]
            missing = [u for u, p in zip(users, got, strict=True) if p is None or p["events"] != want]
            return missing if missing else True

        await wait_for(all_mirrored, 90, "every profile in Redis")

        # 1. Redis down for 20 s while events keep coming (the learner's snapshots need Redis)
        _redis("stop", own_redis, tmp_path)
        later = t0 + timedelta(hours=1)
        more = [
            r
            for u in users
            for i in range(2)
            for r in view_records(
                dep, u, later + timedelta(seconds=10 * i), 1, item="c9", event_id=f"{u}-more{i}"
            )
        ]
        await produce(dep.bootstrap, more)
        deadline = time.monotonic() + 20
        saw_down = False
        while time.monotonic() < deadline:
            body = await _readyz(worker.url)
            saw_down = saw_down or (body is not None and str(body.get("redis", "")).startswith("down"))
            assert worker.alive(), f"the worker exited during the outage:\n{worker.log.read_text()[-3000:]}"
            await asyncio.sleep(1)
        assert saw_down, "/readyz must say that Redis is down"

        # 2. Redis comes back empty (no persistence): every profile is copied back, no rebalance
        _redis("start", own_redis, tmp_path)
        await wait_for(lambda: all_mirrored(5), 90, "every profile back in an empty Redis")
        assert worker.alive()

        # 3. FLUSHALL on a live Redis: the same
        await client.flushall()
        await wait_for(lambda: all_mirrored(5), 90, "every profile back after FLUSHALL")

        async def ready() -> bool | object:
            body = await _readyz(worker.url)
            return (body is not None and body.get("ready") is True) or body

        await wait_for(ready, 60, "/readyz ready again")
        assert worker.alive()
        log = worker.log.read_text()
        assert "lost the mirrored profiles" in log
    finally:
        worker.kill()
        await client.aclose()
