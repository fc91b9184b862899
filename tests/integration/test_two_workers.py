"""Two workers share the partitions; a user's anonymous and logged-in events arrive on different
partitions and still make one stitched profile, every event counted once."""

from __future__ import annotations

from collections import Counter

import orjson
from aiokafka.partitioner import murmur2

from tests.integration.conftest import Deployment, produce, profile, wait_for

PARTITIONS = 4


def partition_of(key: str) -> int:
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


async def test_two_workers_one_stitched_profile(deployment: Deployment, redis_client) -> None:
    dep = deployment
    dep.partitions = PARTITIONS
    dep.create_topics()
    users = []
    i = 0
    while len(users) < 20:  # anonymous id and user id on different partitions
        uid, anon = f"pat-{i}", f"dev-{i}"
        if partition_of(uid) != partition_of(anon):
            users.append((uid, anon))
        i += 1
    records = []
    for uid, anon in users:
        for n in range(3):  # anonymous browsing on the web
            records.append(
                (
                    dep.ingress("web", "view"),
                    anon,
                    {
                        "event_id": f"{anon}-{n}",
                        "type": "view",
                        "channel": "web",
                        "anonymous_id": anon,
                        "item_id": "c9",
                        "occurred_at": f"2026-02-01T09:0{n}:00Z",
                        "view": {"progress": 0.2},
                    },
                )
            )
        records.append(
            (
                dep.ingress("app", "click"),
                anon,
                {
                    "event_id": f"{uid}-login",
                    "type": "click",
                    "channel": "app",
                    "anonymous_id": anon,
                    "user_id": uid,
                    "occurred_at": "2026-02-01T09:10:00Z",
                },
            )
        )
        for n in range(4):  # logged in on the app (keyed by user id)
            records.append(
                (
                    dep.ingress("app", "view"),
                    uid,
                    {
                        "event_id": f"{uid}-{n}",
                        "type": "view",
                        "channel": "app",
                        "user_id": uid,
                        "item_id": "c9",
                        "occurred_at": f"2026-02-01T09:2{n}:00Z",
                        "view": {"progress": 0.9},
                    },
                )
            )
        for n in range(2):  # and anonymous again afterwards, on a second device session
            records.append(
                (
                    dep.ingress("web", "click"),
                    anon,
                    {
                        "event_id": f"{anon}-late-{n}",
                        "type": "click",
                        "channel": "web",
                        "anonymous_id": anon,
                        "occurred_at": f"2026-02-01T09:3{n}:00Z",
                    },
                )
            )
    w1, w2 = dep.worker("w1"), dep.worker("w2")
    w1.start()
    w2.start()
    await w1.ready()
    await w2.ready()
    await produce(dep.bootstrap, [(t, k.encode(), orjson.dumps(v)) for t, k, v in records])

    async def stitched() -> bool | dict[str, object]:
        bad = {}
        for uid, _ in users:
            p = await profile(redis_client, dep, f"u:{uid}")
            if p is None or p["events"] != 10 or p["by_channel"] != {"web": 5, "app": 5}:
                bad[uid] = p and (p["events"], p["by_channel"])
        return bad if bad else True

    await wait_for(stitched, 120, "one stitched profile per user with all 10 events")
    for uid, anon in users:
        redirect = await profile(redis_client, dep, f"a:{anon}")
        assert redirect is not None and redirect["merged_into"] == f"u:{uid}"
    assert w1.alive() and w2.alive()
    total = Counter()
    for uid, _ in users:
        total["events"] += (await profile(redis_client, dep, f"u:{uid}"))["events"]
    assert total["events"] == len(records)
