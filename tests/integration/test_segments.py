"""The shared models through the real broker (segmentation, churn, value): one learner, every
worker scoring from its latest snapshots, exactly-once learning across crashes."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from models import checkpoint
from models.features import profile_features
from models.profile import Profile
from tests.integration.conftest import Deployment, consume, produce, started_worker, wait_for

FAST_LEARNING = {
    "NBA_SEGMENTS__N_SEGMENTS": "3",
    "NBA_SEGMENTS__WARMUP": "40",
    "NBA_SEGMENTS__FREEZE_SCALER_AFTER": "200",
    "NBA_SEGMENTS__SNAPSHOT_EVERY": "30",
    "NBA_SEGMENTS__SNAPSHOT_INTERVAL_S": "2",
    "NBA_SEGMENTS__TRAIN_MIN_EVENTS": "2",
    "NBA_SEGMENTS__TRAIN_INTERVAL_S": "3600",
}


def simulate(dep: Deployment, users: int, days: int, seed: int) -> None:
    args = ["--days", str(days), "--users", str(users), "--seed", str(seed), "--rate", "0"]
    subprocess.run(
        [sys.executable, "-m", "app.cli", "simulate", *args],
        env=dep.env(),
        cwd=dep.tmp,  # the truth file lands beside the run, not in the repository
        capture_output=True,
        check=True,
    )


async def segments(url: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=5) as client:
        data: dict[str, Any] = (await client.get(url + "/segments")).json()
        return data


async def latest_snapshots(dep: Deployment) -> dict[str, tuple[dict[str, Any], Any]]:
    """The newest snapshot of each model (the compacted topic's last value per key)."""
    records = await consume(dep.bootstrap, dep.topic("nba.models"), until=10**9, timeout=5)
    assert records, "no model snapshot published"
    return {r.key.decode(): checkpoint.decode(r.value) for r in records}


async def topic_size(dep: Deployment, name: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=dep.bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(dep.topic(name), 0)
        return int((await consumer.end_offsets([tp]))[tp])
    finally:
        await consumer.stop()


async def stable(fetch: Any, quiet_s: float, timeout: float, what: str) -> Any:
    """Wait until ``fetch()`` returns the same non-None value for ``quiet_s`` seconds."""
    deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
    while time.monotonic() < deadline:
        value = await fetch()
        if value != last or value is None:
            last, since = value, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return value
        await asyncio.sleep(0.5)
    raise AssertionError(f"{what} did not settle in {timeout}s; last: {last}")


async def test_two_workers_score_with_the_one_learners_snapshot_and_agree(
    deployment: Deployment, redis_client
) -> None:
    dep = deployment
    # one training sample per user: the pings below must be scored, not learned, so that every
    # ping meets the same snapshot
    dep.extra.update(FAST_LEARNING, NBA_SEGMENTS__TRAIN_INTERVAL_S=str(365 * 86_400))
    dep.create_topics()
    w1, w2 = dep.worker("w1"), dep.worker("w2")
    w1.start()
    w2.start()
    await w1.ready()
    await w2.ready()
    simulate(dep, users=200, days=21, seed=5)

    async def versions() -> tuple[str, str] | None:
        a, b = await segments(w1.url), await segments(w2.url)
        return (a["model"], b["model"]) if a["model"] and b["model"] else None

    v1, v2 = await stable(versions, quiet_s=6, timeout=180, what="the model snapshots")
    assert v1 == v2, "both workers score with the same snapshot"
    header, model = (await latest_snapshots(dep))["segmentation"]
    assert header["version"] == v1 and model.ready

    # every user sends one more event: each is scored by whichever worker owns them
    # users who already sent their one training sample (2 events): a ping must not be their first
    uids = []
    async for k in redis_client.scan_iter(f"{dep.redis_prefix}profile:u:*"):
        if orjson.loads(await redis_client.get(k))["events"] >= 2 and len(uids) < 80:
            uids.append(k.decode().split("profile:u:", 1)[1])
    at = "2026-03-01T12:00:00Z"
    await produce(
        dep.bootstrap,
        [
            (
                dep.ingress("app", "click"),
                uid.encode(),
                orjson.dumps(
                    {
                        "event_id": f"ping-{uid}",
                        "type": "click",
                        "channel": "app",
                        "user_id": uid,
                        "occurred_at": at,
                    }
                ),
            )
            for uid in uids
        ],
    )

    async def pinged() -> bool | int:
        missing = 0
        for uid in uids:
            raw = await redis_client.get(f"{dep.redis_prefix}profile:u:{uid}")
            missing += raw is None or orjson.loads(raw)["last_seen"] < 1_772_366_400.0
        return missing == 0 or missing

    await wait_for(pinged, 90, "every pinged user's profile to show the ping")
    assert (await versions()) == (v1, v1), "no new snapshot while the pings were scored"
    for uid in uids:
        data = orjson.loads(await redis_client.get(f"{dep.redis_prefix}profile:u:{uid}"))
        data.pop("preferred_channel")
        p = Profile.from_dict(data)
        assert p.last_seen is not None
        assert data["segment"] == model.predict_one(profile_features(p, p.last_seen)), uid
        assert 0.0 <= data["churn_risk"] <= 1.0 and data["churn_reasons"], uid  # scored on the ping

    applied = []
    async with httpx.AsyncClient(timeout=5) as client:
        for w in (w1, w2):
            text = (await client.get(w.url + "/metrics")).text
            applied.append(
                sum(
                    float(line.split()[-1])
                    for line in text.splitlines()
                    if line.startswith("nba_events_applied_total")
                )
            )
    assert all(n > 0 for n in applied), f"both workers scored users: {applied}"
    listing = await segments(w1.url)
    assert [s["segment"] for s in listing["segments"]] == [0, 1, 2]
    assert all(s["description"] for s in listing["segments"])
    assert sum(s["users"] for s in listing["segments"]) > 0


async def test_a_learner_killed_mid_training_learns_every_sample_exactly_once(deployment: Deployment) -> None:
    dep = deployment
    dep.extra.update(FAST_LEARNING)
    worker = await started_worker(dep)
    sim = asyncio.create_task(asyncio.to_thread(simulate, dep, 150, 21, 6))
    kills, deadline = 0, time.monotonic() + 180
    while kills < 2:  # SIGKILL twice while the learner has samples pending
        assert time.monotonic() < deadline, f"only {kills} kills: too few training samples"
        learned = await topic_size(dep, "nba.training")
        if learned >= 150 * (kills + 1):
            worker.kill(signal.SIGKILL)
            kills += 1
            worker.start()
            await worker.ready()
        await asyncio.sleep(0.2)
    await sim

    async def learned_vs_sent() -> tuple[int, int] | None:
        sent = await topic_size(dep, "nba.training")
        latest = await latest_snapshots(dep)
        return sum(header["n_learned"] for header, _ in latest.values()), sent

    n_learned, sent = await stable(learned_vs_sent, quiet_s=6, timeout=180, what="learning")
    assert sent > 300 and n_learned == sent, "every training sample learned exactly once"
    latest = await latest_snapshots(dep)
    assert max(header["offset"] for header, _ in latest.values()) == sent - 1
    # three weeks of simulated time: churn labels (14-day horizon) were learned too
    churn_header, churn = latest["churn"]
    assert churn.n_learned == churn_header["n_learned"] > 0 and churn_header["validation"]["window"] > 0
