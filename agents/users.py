"""Stage 2, ``users``: the user stream -> profiles, due times, decisions -> ``marketing.actions``.

Partitioned by canonical user. Messages: ``event`` (apply), ``link`` (fold an anonymous profile
into a user), ``merge`` (receive a folded profile).
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import orjson

from agents import metrics
from agents.dlq import dead_letter
from agents.runtime import Runtime
from models.clock import PartitionClock
from models.decision import Decision
from models.due import DueIndex
from models.facts import EventFacts
from models.identity import external_id
from models.profile import Applied, Profile, merge_into
from models.user_step import StepConfig, on_due, on_event
from schemas.actions import NextBestAction
from schemas.dlq import Reason


def _load(rt: Runtime, canonical: str) -> Profile | None:
    raw = rt.profiles.get(canonical)
    return Profile.loads(raw) if raw is not None else None


def _store(rt: Runtime, profile: Profile) -> None:
    rt.profiles[profile.canonical] = profile.dumps()
    rt.mirror.put(profile.canonical, orjson.dumps(profile.public_view()))


def _clock(rt: Runtime, partition: int) -> PartitionClock:
    clock = rt.clocks.get(partition)
    if clock is None:
        assert rt.clocks_table is not None
        raw = rt.clocks_table.get(str(partition))
        clock = PartitionClock.from_dict(raw) if raw else PartitionClock()
        rt.clocks[partition] = clock
    return clock


def step_config(rt: Runtime) -> StepConfig:
    return StepConfig(
        dedupe_window_s=rt.time.dedupe_window_s,
        dormant_after_s=rt.time.dormant_after_s,
        backfill_max_age_s=rt.time.backfill_max_age_s,
        send_enabled=not rt.no_send,
        rule=rt.rule,
    )


def to_action(canonical: str, d: Decision) -> NextBestAction:
    kind, uid = external_id(canonical)
    return NextBestAction(
        action_id=d.action_id,
        user_id=uid,
        user_kind="user" if kind == "user" else "anonymous",
        action_type=d.action_type,
        channel=d.channel,
        item_ids=list(d.item_ids),
        score=d.score,
        reasons=list(d.reasons),
        model_versions=dict(d.model_versions),
        trigger_event_id=d.trigger_event_id,
        created_at=datetime.fromtimestamp(d.created_at, UTC),
        expires_at=datetime.fromtimestamp(d.expires_at, UTC),
    )


async def _advance(rt: Runtime, partition: int, ts: float, cfg: StepConfig) -> None:
    """Move the partition's watermark and fire the due times it passed."""
    clock = _clock(rt, partition)
    if not clock.observe(ts, lateness_s=rt.time.lateness_s) or clock.watermark is None:
        return
    metrics.WATERMARK.labels(str(partition)).set(clock.watermark)
    assert rt.due is not None and rt.clocks_table is not None
    index = DueIndex(rt.due, partition, rt.time.due_bucket_s)
    due, next_bucket = index.pop_due(clock.watermark, clock.next_due_bucket)
    if next_bucket != clock.next_due_bucket:
        clock.next_due_bucket = next_bucket
        rt.clocks_table[str(partition)] = clock.to_dict()
    for member in due:
        metrics.DUE_FIRED.inc()
        profile = _load(rt, member)
        if profile is not None and on_due(profile, clock.watermark, cfg):
            metrics.USERS_DORMANT.inc()
            _store(rt, profile)


async def _on_event(rt: Runtime, partition: int, key: str, msg: dict[str, Any]) -> None:
    profile = _load(rt, key) or Profile(key)
    if profile.merged_into is not None:  # an anonymous id folded into a user: forward
        await rt.user_stream.send(key=profile.merged_into.encode(), value=orjson.dumps(msg))
        return
    facts = EventFacts.from_dict(msg["facts"])
    cfg = step_config(rt)
    watermark = _clock(rt, partition).watermark
    assert rt.due is not None
    result = on_event(
        profile, facts, watermark=watermark, due=DueIndex(rt.due, partition, rt.time.due_bucket_s),
        cfg=cfg, catalog=rt.catalog,
    )
    if result.outcome is Applied.duplicate:
        metrics.EVENTS_DUPLICATE.inc()
    elif result.outcome is Applied.late:
        metrics.EVENTS_LATE.inc()
    else:
        metrics.EVENTS_APPLIED.inc()
        metrics.EVENTS_BACKFILL.inc(result.backfill)
        _store(rt, profile)
        metrics.PROCESSING_LATENCY.observe(max(0.0, time.time() - msg["arrived_ms"] / 1000))
        if result.decision is not None:
            await _publish(rt, key, result.decision, msg["arrived_ms"])
    await _advance(rt, partition, facts.ts, cfg)


async def _publish(rt: Runtime, canonical: str, decision: Decision, arrived_ms: int) -> None:
    if rt.no_send:
        metrics.ACTIONS_SUPPRESSED.inc()
        return
    action = to_action(canonical, decision)
    await rt.actions.send(key=action.user_id.encode(), value=action.model_dump_json().encode())
    metrics.ACTIONS_PUBLISHED.labels(action.action_type, action.channel).inc()
    metrics.ACTION_LATENCY.observe(max(0.0, time.time() - arrived_ms / 1000))


async def _on_link(rt: Runtime, key: str, target: str) -> None:
    anon = _load(rt, key) or Profile(key)
    if anon.merged_into is not None:
        return  # already folded (a redelivered link)
    _store(rt, Profile(key, merged_into=target))
    await rt.user_stream.send(
        key=target.encode(), value=orjson.dumps({"kind": "merge", "profile": anon.to_dict()})
    )


async def _on_merge(rt: Runtime, key: str, source: dict[str, Any]) -> None:
    profile = _load(rt, key) or Profile(key)
    if merge_into(profile, Profile.from_dict(source)):
        metrics.PROFILES_MERGED.inc()
        _store(rt, profile)


async def handle(rt: Runtime, partition: int, key: str, msg: dict[str, Any]) -> None:
    kind = msg.get("kind")
    if kind == "event":
        await _on_event(rt, partition, key, msg)
    elif kind == "link":
        await _on_link(rt, key, msg["target"])
    elif kind == "merge":
        await _on_merge(rt, key, msg["profile"])
    else:
        raise ValueError(f"unknown user-stream message kind {kind!r}")


def register(app: Any, rt: Runtime) -> None:
    @app.agent(rt.user_stream, name="users")
    async def users(stream: Any) -> None:
        async for ev in stream.events():
            m = ev.message
            try:
                await handle(rt, m.partition, m.key.decode(), orjson.loads(ev.value))
            except Exception as exc:  # one bad event never stops the stream
                await dead_letter(
                    rt.dlq, topic=m.topic, partition=m.partition, offset=m.offset, key=m.key,
                    value=ev.value, reason=Reason.processing_error, detail=repr(exc),
                )


def forget_clocks(rt: Runtime) -> None:
    """Drop in-memory partition clocks (after a rebalance they reload from the table)."""
    rt.clocks.clear()


async def resync_mirror(rt: Runtime) -> int:
    """Re-mirror every profile this worker owns (after table recovery: Redis may be stale)."""
    count = 0
    for key, raw in list(rt.profiles.items()):
        if raw is None:
            continue
        rt.mirror.put(key, orjson.dumps(Profile.loads(raw).public_view()))
        count += 1
    return count
