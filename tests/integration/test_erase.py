"""Erase through the real broker and Redis: after a users.erase request, nothing keyed by the
user or by the anonymous id merged into them survives, in any table (the latest value of every
key of every changelog), in Redis (a SCAN), or on the compacted consent topic; the user's waiting
action is withdrawn; and late events do not rebuild them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from schemas.actions import NextBestAction
from tests.integration.conftest import Deployment, consume, produce, profile, started_worker, wait_for

EVENING = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai: the action waits for 08:00
USER, ANON = "erin-7f3a", "dev-erin-7f3a"


def _event(n: int, at: datetime, channel: str, *, user: bool = True, anon: bool = False) -> dict[str, Any]:
    e: dict[str, Any] = {
        "event_id": f"erin-{n}",
        "type": "view",
        "channel": channel,
        "item_id": "c1",
        "occurred_at": at.isoformat(),
        "view": {"duration_s": 60, "progress": 0.3},
        "context": {"timezone": "Asia/Shanghai"},
    }
    if user:
        e["user_id"] = USER
    if anon:
        e["anonymous_id"] = ANON
    return e


async def _latest_per_key(bootstrap: str, topics: list[str]) -> dict[tuple[str, bytes | None], bytes | None]:
    """The newest value of every key of ``topics`` (``None``: a tombstone)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    latest: dict[tuple[str, bytes | None], bytes | None] = {}
    try:
        parts = [tp for t in topics for tp in await _partitions(consumer, t)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        end = await consumer.end_offsets(parts)
        while [tp for tp in parts if await consumer.position(tp) < end[tp]]:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    latest[(r.topic, r.key)] = r.value
    finally:
        await consumer.stop()
    return latest


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[Any]:
    from aiokafka import TopicPartition

    await consumer._client.force_metadata_update()
    return [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]


async def test_erase_leaves_nothing_keyed_by_the_user(deployment: Deployment, redis_client: Any) -> None:
    dep = deployment
    worker = await started_worker(dep)
    web, app = dep.ingress("web", "view"), dep.ingress("app", "view")
    before = [
        (web, ANON.encode(), _event(0, EVENING - timedelta(hours=1), "web", user=False, anon=True)),
        (web, ANON.encode(), _event(1, EVENING - timedelta(minutes=30), "web", anon=True)),  # the login
        *((app, USER.encode(), _event(n, EVENING + timedelta(seconds=n), "app")) for n in range(2, 5)),
    ]
    consent = {"user_id": USER, "channel": "sms", "granted": True, "at": EVENING.isoformat()}
    await produce(
        dep.bootstrap,
        [(t, k, orjson.dumps(v)) for t, k, v in before]
        + [(dep.topic("users.consent"), f"{USER}:sms".encode(), orjson.dumps(consent))],
    )
    [sent] = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=1, timeout=60)
    action = NextBestAction.model_validate_json(sent.value)
    assert action.user_id == USER and action.send_at is not None and action.send_at > EVENING

    async def merged_with_consent() -> bool | Any:
        got = await profile(redis_client, dep, f"u:{USER}")
        return (got is not None and got["events"] == 5 and "sms" in got["consent"]) or got

    await wait_for(merged_with_consent, 60, "the merged profile with its consent")

    erase = {"request_id": "r1", "user_id": USER, "at": (EVENING + timedelta(minutes=5)).isoformat()}
    await produce(dep.bootstrap, [(dep.topic("users.erase"), USER.encode(), orjson.dumps(erase))])
    records = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=2, timeout=60)
    cancelled = NextBestAction.model_validate_json(records[1].value)
    assert (cancelled.event, cancelled.action_id) == ("action_cancelled", action.action_id)

    late = [
        (app, USER.encode(), _event(5, EVENING + timedelta(minutes=6), "app")),
        (web, ANON.encode(), _event(6, EVENING + timedelta(minutes=7), "web", anon=True)),
        (web, ANON.encode(), _event(7, EVENING + timedelta(minutes=8), "web", user=False, anon=True)),
    ]
    await produce(dep.bootstrap, [(t, k, orjson.dumps(v)) for t, k, v in late])

    async def late_events_dropped() -> bool | Any:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{worker.url}/metrics")).text
        line = next((x for x in text.splitlines() if x.startswith("nba_erased_events_dropped_total ")), "")
        return (line != "" and float(line.split()[1]) >= 3) or line

    await wait_for(late_events_dropped, 60, "the three late events dropped by the suppression list")

    async def gone_from_redis() -> bool | Any:
        found = []
        async for key in redis_client.scan_iter(match=f"{dep.redis_prefix}*"):
            if USER.encode() in key or ANON.encode() in key:
                found.append(key)
            elif key.startswith(f"{dep.redis_prefix}segment:".encode()):
                found += [
                    m for m in await redis_client.smembers(key) if USER.encode() in m or ANON.encode() in m
                ]
        return found if found else True

    await wait_for(gone_from_redis, 30, "no Redis key or segment member of the erased ids")
    async with httpx.AsyncClient() as client:
        assert (await client.get(f"{worker.url}/users/{USER}")).status_code == 404

    admin = AIOKafkaAdminClient(bootstrap_servers=dep.bootstrap)
    await admin.start()
    try:
        changelogs = [
            t for t in await admin.list_topics() if t.startswith(dep.app_id) and t.endswith("-changelog")
        ]
    finally:
        await admin.close()
    assert {t.rsplit("-", 2)[-2] for t in changelogs} >= {"profiles", "identity", "due", "erased", "clocks"}

    async def nothing_keyed_by_them() -> bool | Any:
        latest = await _latest_per_key(dep.bootstrap, [*changelogs, dep.topic("users.consent")])
        alive = [
            (topic, key)
            for (topic, key), value in latest.items()
            if value is not None and any(i.encode() in (key or b"") + value for i in (USER, ANON))
        ]
        return alive if alive else True

    await wait_for(nothing_keyed_by_them, 60, "no live changelog or consent record naming the erased ids")
