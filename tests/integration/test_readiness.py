"""Stop the broker: /readyz answers 503; start it again: the worker recovers and answers 200.

Uses a broker of its own (port 19092, started by deploy/local/kafka.sh), so stopping it disturbs
no other test.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import ROOT, Deployment

PORT, CONTROLLER = 19092, 19093


def broker(cmd: str, tmp: Path) -> None:
    env = {
        **os.environ,
        "KAFKA_PORT": str(PORT),
        "KAFKA_CONTROLLER_PORT": str(CONTROLLER),
        "KAFKA_DATA_DIR": str(tmp / "kafka-data"),
    }
    subprocess.run([str(ROOT / "deploy/local/kafka.sh"), cmd], env=env, check=True, capture_output=True)


@pytest.fixture
def own_broker(tmp_path: Path):
    broker("start", tmp_path)
    yield f"127.0.0.1:{PORT}"
    broker("stop", tmp_path)


async def status(url: str) -> int | None:
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return (await client.get(url + "/readyz")).status_code
    except httpx.HTTPError:
        return None


async def wait_status(url: str, want: int, timeout: float) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await status(url) == want:
            return time.monotonic() - start
        await asyncio.sleep(0.5)
    raise AssertionError(f"/readyz did not answer {want} within {timeout}s (last {await status(url)})")


async def test_readyz_follows_the_broker(own_broker: str, tmp_path: Path) -> None:
    dep = Deployment(tmp_path, partitions=2, bootstrap=own_broker)
    dep.create_topics()
    worker = dep.worker()
    worker.start()
    try:
        await worker.ready()
        broker("stop", tmp_path)
        await wait_status(worker.url, 503, 60)
        assert worker.alive(), "the worker must survive a broker outage"
        broker("start", tmp_path)
        await wait_status(worker.url, 200, 120)
        assert worker.alive()
    finally:
        worker.kill()
