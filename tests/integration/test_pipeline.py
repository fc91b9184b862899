"""End to end on the real broker and Redis: events in, actions and profiles out; bad input to the DLQ."""

from __future__ import annotations

import base64
import hashlib
from collections import Counter

import httpx
import orjson

from app.demo import demo_catalog, demo_events
from schemas.actions import NextBestAction
from schemas.dlq import DeadLetter
from tests.integration.conftest import Deployment, consume, produce, profile, started_worker, wait_for

CHANNELS = ("app", "web", "wechat", "weibo", "douyin", "zhihu")


async def test_events_from_several_channels_become_actions_and_profiles(
    deployment: Deployment, redis_client
) -> None:
    dep = deployment
    dep.create_topics()
    events = list(demo_events(n_users=12, events_per_user=20, channels=CHANNELS, seed=3))
    catalog = demo_catalog(seed=3)
    await produce(
        dep.bootstrap,
        [(dep.topic("catalog.items"), i.item_id.encode(), i.model_dump_json().encode()) for i in catalog],
    )
    await produce(
        dep.bootstrap,
        [(dep.ingress(e.topic_channel, e.type), e.key.encode(), orjson.dumps(e.payload)) for e in events],
    )
    assert len({e.topic_channel for e in events}) >= 4
    worker = dep.worker()
    worker.start()
    await worker.ready()

    # every user's profile holds all 20 of their events, anonymous ones stitched in
    per_user = Counter(e.payload["event_id"].rsplit("-", 1)[0] for e in events)

    async def all_profiles_complete() -> bool | dict[str, int]:
        got = {u: ((await profile(redis_client, dep, f"u:{u}")) or {}).get("events", 0) for u in per_user}
        return got == dict(per_user) or got

    await wait_for(all_profiles_complete, 90, "every profile to hold all its events")

    records = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=1, timeout=30)
    assert records, "no action published"
    action = NextBestAction.model_validate_json(records[0].value)
    assert records[0].key == action.user_id.encode()
    assert action.action_type == "recommend_item" and action.item_ids
    assert any("times without buying it" in r for r in action.reasons)
    titles = {i.item_id: i.title for i in catalog}
    assert any(titles[action.item_ids[0]] in r for r in action.reasons), "catalog titles reach the reasons"

    async with httpx.AsyncClient() as client:
        resp = await client.get(f"{worker.url}/users/{action.user_id}")
        assert resp.status_code == 200
        body = resp.json()
        assert body["events"] == per_user[action.user_id]
        assert body == await profile(redis_client, dep, f"u:{action.user_id}")
        anon = await client.get(f"{worker.url}/users/dev-{action.user_id.split('-')[1]}")
        assert anon.json()["canonical"] == f"u:{action.user_id}", "anonymous id resolves to the stitched user"
        assert (await client.get(f"{worker.url}/users/nobody")).status_code == 404
        metrics = (await client.get(f"{worker.url}/metrics")).text
    assert 'nba_events_consumed_total{channel="' in metrics
    assert 'nba_actions_published_total{action_type="recommend_item"' in metrics
    assert "nba_processing_latency_seconds_bucket" in metrics and "nba_consumer_lag{" in metrics
    assert "user-0" not in metrics, "no user ids in metric labels"


async def test_invalid_messages_go_to_the_dlq_with_reasons_while_valid_ones_flow(
    deployment: Deployment, redis_client
) -> None:
    dep = deployment
    worker = await started_worker(dep)

    def ev(i: int, **over: object) -> dict[str, object]:
        base = {
            "event_id": f"ok-{i}",
            "type": "click",
            "channel": "app",
            "user_id": "alice",
            "occurred_at": f"2026-02-01T{10 + i // 60:02d}:{i % 60:02d}:00Z",
            "click": {"target": "/"},
        }
        return {**base, **over}

    click = dep.ingress("app", "click")
    bad = [
        (click, b"alice", b"{oops", "invalid_json"),
        (click, b"alice", orjson.dumps(ev(90, padding="x" * 70_000)), "oversized"),
        (click, b"alice", orjson.dumps(ev(91, occurred_at=12345)), "schema_violation"),
        (
            click,
            b"alice",
            orjson.dumps(ev(92, type="view", view={"progress": 0.5}, item_id="c1", click=None)),
            "topic_mismatch",
        ),
        (click, b"alice", orjson.dumps(ev(93, channel="myspace")), "unknown_channel"),
        (click, b"alice", orjson.dumps(ev(94, anonymous_id="dev-x")), "key_mismatch"),
        # issue 18: a wrong client clock, a string amount, a message too large for a whole copy
        # in a dead letter, an event older than alice's dedupe window
        (click, b"alice", orjson.dumps(ev(95, occurred_at="2099-01-01T00:00:00Z")), "future_dated"),
        (
            dep.ingress("app", "purchase"),
            b"alice",
            orjson.dumps(
                ev(
                    96,
                    type="purchase",
                    item_id="c1",
                    click=None,
                    purchase={"order_id": "o", "amount": "49.0", "currency": "CNY"},
                )
            ),
            "schema_violation",
        ),
        (click, b"alice", b'{"padding": "' + b"y" * (900 * 1024) + b'"}', "oversized"),
        (click, b"alice", orjson.dumps(ev(97, occurred_at="2026-01-01T10:00:00Z")), "late"),
    ]
    good = [(click, b"alice", orjson.dumps(ev(i))) for i in range(10)]
    dupes = [(click, b"alice", orjson.dumps(ev(i))) for i in range(0, 10, 2)]
    records = good[:5] + [(t, k, v) for t, k, v, _ in bad] + good[5:] + dupes
    await produce(dep.bootstrap, records)

    dead = await consume(dep.bootstrap, dep.topic("events.dlq"), until=len(bad), timeout=60)
    letters = [DeadLetter.model_validate_json(r.value) for r in dead]
    assert sorted(d.reason.value for d in letters) == sorted(r for *_, r in bad)
    for d in letters:
        assert d.topic in (click, dep.ingress("app", "purchase")) and d.offset >= 0
        original = base64.b64decode(d.value_b64)
        if d.truncated:  # the 900 KiB message: its start, size and hash; not replayable
            [big] = [v for _, _, v, _ in bad if len(v) > 900 * 1024]
            assert not d.replayable and big.startswith(original) and d.original_bytes == len(big)
            assert d.original_sha256 == hashlib.sha256(big).hexdigest()
        else:
            assert original in [v for _, _, v, _ in bad] and d.replayable

    async def counted() -> bool | object:
        p = await profile(redis_client, dep, "u:alice")
        return (p is not None and p["events"] == 10) or p

    await wait_for(counted, 60, "10 distinct valid events, duplicates dropped")
    async with httpx.AsyncClient() as client:
        metrics = (await client.get(f"{worker.url}/metrics")).text
    assert "nba_events_duplicate_total 5.0" in metrics
    for reason, n in Counter(r for *_, r in bad).items():
        assert f'nba_events_invalid_total{{reason="{reason}"}} {n:.1f}' in metrics
    assert worker.alive()
