"""Kill the worker with SIGKILL mid-stream three times: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
import random
import re
import signal
from collections import Counter

import orjson
import pytest

from app.demo import demo_events
from models.profile import Profile
from tests.integration.conftest import Deployment, consume, produce, profile, wait_for

CHANNELS = ("app", "web", "wechat", "weibo", "douyin", "zhihu")


async def _past(progress, target: float) -> bool:  # type: ignore[no-untyped-def]
    return await progress() >= target


async def _where_lost(dep: Deployment, short: set[str]) -> tuple[dict[str, int], dict[str, int]]:
    """Per short user: events in the profile table's changelog (the worker's state, whatever
    Redis holds) and distinct events on the repartition topic (what the ingest agent passed on)."""
    tables: dict[str, int] = {}
    for r in await consume(dep.bootstrap, f"{dep.app_id}-profiles-changelog", until=10**9, timeout=8):
        user = r.key.decode().rsplit(":", 1)[-1]
        if user in short and r.value is not None:
            tables[user] = Profile.loads(r.value).events
    seen: dict[str, set[bytes]] = {u: set() for u in short}
    for r in await consume(dep.bootstrap, dep.topic("nba.user-stream"), until=10**9, timeout=8):
        for user in short:
            for m in re.finditer(rb'"(' + user.encode() + rb'-\d+)"', r.value or b""):
                seen[user].add(m.group(1))
    return tables, {u: len(ids) for u, ids in seen.items()}


@pytest.mark.timeout(600)  # a failure spends ~2 min saying where the lost events are
async def test_sigkill_three_times_then_counts_equal_distinct_events(
    deployment: Deployment, redis_client
) -> None:
    dep = deployment
    dep.create_topics()
    rng = random.Random(11)
    events = list(demo_events(n_users=150, events_per_user=20, channels=CHANNELS, seed=11))
    # producers retry: redeliver a tenth of the events
    stream = events + rng.sample(events, len(events) // 10)
    records = [
        (dep.ingress(e.topic_channel, e.type), e.key.encode(), orjson.dumps(e.payload)) for e in stream
    ]
    expected = Counter(e.payload["event_id"].rsplit("-", 1)[0] for e in events)
    expected_types: Counter[tuple[str, str]] = Counter(
        (e.payload["event_id"].rsplit("-", 1)[0], e.type) for e in events
    )

    async def progress() -> int:
        done = 0
        for u in expected:
            done += ((await profile(redis_client, dep, f"u:{u}")) or {}).get("events", 0)
        return done

    worker = dep.worker()
    # spread production over ~20 s so that processing cannot finish before the kills
    producer_task = asyncio.create_task(produce(dep.bootstrap, records, rate=len(records) / 20))
    total = sum(expected.values())
    worker.start()
    at_kill = []
    for fraction in (0.15, 0.40, 0.65):  # kill once processing has passed each point
        await worker.ready()
        await wait_for(lambda f=fraction: _past(progress, f * total), 60, f"{fraction:.0%} processed")
        await asyncio.sleep(rng.uniform(0, 0.3))
        worker.kill(signal.SIGKILL)
        at_kill.append(await progress())
        worker.start()
    await producer_task
    await worker.ready()

    async def complete() -> bool | dict[str, int]:
        got = {u: ((await profile(redis_client, dep, f"u:{u}")) or {}).get("events", 0) for u in expected}
        return got == dict(expected) or {u: n for u, n in got.items() if n != expected[u]}

    try:
        await wait_for(complete, 180, "profiles to equal the distinct events per user")
    except AssertionError as exc:  # say enough to diagnose it from a CI log
        short = await complete()
        assert isinstance(short, dict)
        anon = {
            u: await profile(redis_client, dep, f"a:{u.replace('user-', 'dev-')}") for u in list(short)[:5]
        }
        where = []  # where every event of the short users sits on the broker, to find the lost ones
        for topic in sorted({t for t, _, _ in records}):
            for r in await consume(dep.bootstrap, topic, until=len(records), timeout=3):
                event_id = orjson.loads(r.value)["event_id"]
                if event_id.rsplit("-", 1)[0] in short:
                    where.append(f"{event_id} {topic.split('.', 1)[1]}[{r.partition}]@{r.offset}")
        tables, streamed = await _where_lost(dep, set(short))
        raise AssertionError(
            f"{exc}\nkills at {at_kill} of {total}\nanonymous profiles: {anon}\n"
            f"events in the profiles table's changelog: {tables}\n"
            f"distinct events on nba.user-stream: {streamed}\n"
            f"their events on the broker: {sorted(where)}\n"
            f"worker log tail:\n{worker.log.read_text()[-3000:]}"
        ) from None
    assert all(0 < n < total for n in at_kill), f"every kill lands mid-stream: {at_kill} of {total}"
    for user in expected:
        p = await profile(redis_client, dep, f"u:{user}")
        assert p is not None
        for etype, n in p["by_type"].items():
            assert expected_types[(user, etype)] == n
    assert worker.starts == 4
