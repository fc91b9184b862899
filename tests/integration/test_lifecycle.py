"""Lifecycle transitions through the real broker: published on users.lifecycle, and silent users
moved to at_risk and dormant by the event-time due-time index, not by their own events."""

from __future__ import annotations

import orjson
from aiokafka.partitioner import murmur2

from schemas.lifecycle import LifecycleChange
from tests.integration.conftest import Deployment, consume, produce, started_worker, wait_for

PARTITIONS = 4


def partition_of(key: str) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def event(dep: Deployment, uid: str, n: int, day: int, etype: str = "click") -> tuple[str, bytes, bytes]:
    payload = {
        "event_id": f"{uid}-{n}",
        "type": etype,
        "channel": "app",
        "user_id": uid,
        "occurred_at": f"2026-03-{day:02d}T10:00:00Z",
    }
    if etype == "purchase":
        payload["item_id"] = "c1"
        payload["purchase"] = {"order_id": f"o-{uid}-{n}", "amount": 9.9, "currency": "CNY"}
    return dep.ingress("app", etype), uid.encode(), orjson.dumps(payload)


async def test_transitions_are_published_and_silent_users_go_dormant_without_sending_events(
    deployment: Deployment, redis_client
) -> None:
    dep = deployment
    dep.partitions = PARTITIONS
    await started_worker(dep)
    quiet = "quiet-1"
    # everyone on every partition moves the clock on; the quiet user buys once on day 1, then stops
    clocks = []
    i = 0
    while (
        len({(murmur2(u.encode()) & 0x7FFFFFFF) % PARTITIONS for u in clocks}) < PARTITIONS or len(clocks) < 8
    ):
        clocks.append(f"clock-{i}")
        i += 1
    records = [event(dep, quiet, 0, 1, "purchase")]
    for day in range(1, 26):
        records += [event(dep, u, day, day) for u in clocks]
    await produce(dep.bootstrap, records)

    async def quiet_is_dormant() -> bool | str:
        raw = await redis_client.get(f"{dep.redis_prefix}profile:u:{quiet}")
        stage = orjson.loads(raw)["stage"] if raw else None
        return stage == "dormant" or str(stage)

    await wait_for(quiet_is_dormant, 90, "the quiet user to become dormant")
    records = await consume(dep.bootstrap, dep.topic("users.lifecycle"), until=10**9, timeout=8)
    changes = [LifecycleChange.model_validate_json(r.value) for r in records]
    mine = [(c.from_stage, c.to_stage, c.at.day) for c in changes if c.user_id == quiet]
    # one active day: rhythm defaults to 7 days -> at risk after 10 days of silence, dormant after 14
    assert mine == [
        ("acquisition", "activation", 1),
        ("activation", "at_risk", 11),
        ("at_risk", "dormant", 15),
    ]
    assert all(r.key.decode() == c.user_id for r, c in zip(records, changes, strict=True))
    # daily clickers: the fifth event activates them, on their fifth active day (retention at once)
    clock_changes = {(c.from_stage, c.to_stage, c.at.day) for c in changes if c.user_id.startswith("clock-")}
    assert clock_changes == {("acquisition", "retention", 5)}
