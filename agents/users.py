"""The ``users`` agent: the engine (:mod:`models.engine`) over the worker's tables.

This module decides nothing. It reads ``nba.user-stream`` messages into the engine's typed
messages, lends the engine the partition's state (:class:`TableStore`, the Faust tables behind
a cache of live profiles, mirrored to Redis) and carries out the effects the engine returns:
sends, metrics and hops. :mod:`agents.ingest` and the routed agents (consent, feedback, erase)
use the same :func:`perform` and :func:`hop`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, MutableMapping
from typing import Any

import orjson

from agents import metrics
from agents.dlq import each_event
from agents.records import to_action, to_cancelled, to_lifecycle, to_record
from agents.runtime import Runtime
from models.churn import ChurnModel, ValueModel
from models.clock import PartitionClock
from models.engine import (
    Count,
    Effect,
    Engine,
    EngineConfig,
    EventApplied,
    Hop,
    LogDecision,
    Outcome,
    PublishAction,
    PublishCancel,
    PublishLifecycle,
    TombstoneConsent,
    Train,
    UserMsg,
    Watermark,
    from_wire,
    to_wire,
)
from models.identity import routing_id
from models.profile import Profile
from models.recommend import Recommender
from models.segmentation import Segmenter
from models.uplift import UpliftModel
from models.user_step import Scorers


class TableStore:
    """The engine's :class:`models.engine.UserStore` over the worker's Faust tables.

    Profiles are decoded once and kept in an LRU cache of live objects: the ``ingest`` and
    ``users`` agents interleave at every ``await``, and both must change the same object, never
    two copies of it. ``put_profile`` writes the table (and with it the changelog), the cache and
    the Redis mirror at once, so the table never lags the object another agent may read while
    this one waits on a send.
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _cache(self, profile: Profile) -> Profile:
        cache = self.rt.profile_cache
        cache[profile.canonical] = profile
        cache.move_to_end(profile.canonical)
        if len(cache) > self.rt.profile_cache_size:
            cache.popitem(last=False)
        return profile

    def profile(self, canonical: str) -> Profile | None:
        cached: Profile | None = self.rt.profile_cache.get(canonical)
        if cached is not None:
            self.rt.profile_cache.move_to_end(canonical)
            return cached
        raw = self.rt.profiles.get(canonical)
        return self._cache(Profile.loads(raw)) if raw is not None else None

    def put_profile(self, profile: Profile) -> None:
        self.rt.profiles[profile.canonical] = profile.dumps()
        self._cache(profile)
        self.rt.mirror.put(profile.canonical, profile)

    def delete_profile(self, canonical: str) -> None:
        self.rt.profile_cache.pop(canonical, None)
        if canonical in self.rt.profiles:
            del self.rt.profiles[canonical]  # a tombstone on the changelog
        self.rt.mirror.delete(canonical)

    def link(self, anonymous_id: str) -> str | None:
        raw = self.rt.identity.get(anonymous_id)
        return raw.decode() if raw else None

    def put_link(self, anonymous_id: str, user_id: str) -> None:
        self.rt.identity[anonymous_id] = user_id.encode()

    def delete_link(self, anonymous_id: str) -> None:
        if anonymous_id in self.rt.identity:
            del self.rt.identity[anonymous_id]

    def clock(self, partition: int) -> PartitionClock:
        clock = self.rt.clocks.get(partition)
        if clock is None:
            assert self.rt.clocks_table is not None
            raw = self.rt.clocks_table.get(str(partition))
            clock = PartitionClock.from_dict(raw) if raw else PartitionClock()
            self.rt.clocks[partition] = clock
        return clock

    def put_clock(self, partition: int, clock: PartitionClock) -> None:
        assert self.rt.clocks_table is not None
        self.rt.clocks[partition] = clock
        self.rt.clocks_table[str(partition)] = clock.to_dict()

    def due_entries(self) -> MutableMapping[str, list[str]]:
        assert self.rt.due is not None
        return self.rt.due

    def is_erased(self, key: str) -> bool:
        return key in self.rt.erased

    def put_erased(self, key: str, at: float) -> None:
        self.rt.erased[key] = repr(at).encode()


def _scorers(rt: Runtime) -> Scorers:
    """The latest snapshots of the shared models."""
    m = rt.models
    seg, churn, value, rec = m.get("segmentation"), m.get("churn"), m.get("value"), m.get("similarity")
    return Scorers(
        segmenter=seg if isinstance(seg, Segmenter) else None,
        churn=churn if isinstance(churn, ChurnModel) else None,
        value=value if isinstance(value, ValueModel) else None,
        recommender=rec.attach(rt.catalog) if isinstance(rec, Recommender) else None,
        uplift=uplift if isinstance(uplift := m.get("uplift"), UpliftModel) else None,
    )


def engine(rt: Runtime) -> Engine:
    """The engine with the rules, catalog and model snapshots in force now."""
    cfg = EngineConfig(
        step=rt.step,
        lateness_s=rt.time.lateness_s,
        due_bucket_s=rt.time.due_bucket_s,
        erase_salt=rt.erase_salt,
        publish=not rt.no_send,
    )
    return Engine(cfg, rt.catalog, _scorers(rt))


_COUNTERS: dict[str, Any] = {
    "events_consumed": metrics.EVENTS_CONSUMED,
    "events_applied": metrics.EVENTS_APPLIED,
    "events_duplicate": metrics.EVENTS_DUPLICATE,
    "events_late": metrics.EVENTS_LATE,
    "events_backfill": metrics.EVENTS_BACKFILL,
    "events_park_overflow": metrics.EVENTS_PARK_OVERFLOW,
    "identity_links": metrics.IDENTITY_LINKS,
    "identity_conflicts": metrics.IDENTITY_CONFLICTS,
    "profiles_merged": metrics.PROFILES_MERGED,
    "consent_changes": metrics.CONSENT_CHANGES,
    "feedback": metrics.FEEDBACK,
    "erased": metrics.ERASED,
    "erased_events_dropped": metrics.ERASED_EVENTS_DROPPED,
    "due_fired": metrics.DUE_FIRED,
    "lifecycle_transitions": metrics.LIFECYCLE_TRANSITIONS,
    "segment_moves": metrics.SEGMENT_MOVES,
    "training_samples": metrics.TRAINING_SAMPLES,
    "churn_labels": metrics.CHURN_LABELS,
    "actions_suppressed": metrics.ACTIONS_SUPPRESSED,
}
"""Each :class:`models.engine.Count` name and the Prometheus counter it moves."""


def _count(c: Count) -> None:
    counter = _COUNTERS[c.name]
    (counter.labels(*c.labels) if c.labels else counter).inc(c.n)


def _since(arrived_ms: int | None) -> float:
    return 0.0 if arrived_ms is None else max(0.0, time.time() - arrived_ms / 1000)


async def hop(rt: Runtime, msg: UserMsg) -> None:
    """Send a message to the partition of ``msg.canonical`` through the user stream."""
    await rt.user_stream.send(key=routing_id(msg.canonical).encode(), value=orjson.dumps(to_wire(msg)))


async def _train(rt: Runtime, payload: dict[str, Any]) -> None:
    await rt.training.send(value=orjson.dumps(payload))


async def perform(rt: Runtime, effects: Iterable[Effect]) -> None:
    """Carry out the engine's effects, in order: counts, sends and hops."""
    for e in effects:
        if isinstance(e, Count):
            _count(e)
        elif isinstance(e, Hop):
            await hop(rt, e.msg)
        elif isinstance(e, EventApplied):
            metrics.PROCESSING_LATENCY.observe(_since(e.arrived_ms))
        elif isinstance(e, Train):
            label = {} if e.y is None else {"y": e.y}
            await _train(rt, {"model": e.model, "x": e.x, **label, "at": e.at})
        elif isinstance(e, Outcome):
            o = e.record
            metrics.OUTCOMES.labels(o["decided"], o["group"], str(bool(o["y"])).lower()).inc()
            if e.learnable:
                await _train(rt, {"model": "uplift", **o})
        elif isinstance(e, PublishLifecycle):
            record = to_lifecycle(e.change, e.segment)
            await rt.lifecycle.send(
                key=record.user_id.encode(), value=record.model_dump_json(by_alias=True).encode()
            )
        elif isinstance(e, LogDecision):
            rec = to_record(e.canonical, e.verdict, e.segment, e.stage)
            await rt.decisions.send(key=rec.user_id.encode(), value=rec.model_dump_json().encode())
            metrics.DECISIONS.labels(rec.outcome).inc()
        elif isinstance(e, PublishAction):
            action = to_action(e.canonical, e.decision, e.segment, e.stage)
            await rt.actions.send(key=action.user_id.encode(), value=action.model_dump_json().encode())
            metrics.ACTIONS_PUBLISHED.labels(action.action_type, action.channel).inc()
            metrics.ACTION_LATENCY.observe(_since(e.arrived_ms))
            metrics.ACTION_HOLD.observe(e.decision.hold_s)
        elif isinstance(e, PublishCancel):
            cancel = to_cancelled(e.canonical, e.send, e.at, e.why)
            await rt.actions.send(key=cancel.user_id.encode(), value=cancel.model_dump_json().encode())
            metrics.ACTIONS_CANCELLED.labels(cancel.action_type, cancel.channel).inc()
        elif isinstance(e, TombstoneConsent):
            await rt.consent.send(key=e.key.encode(), value=None)
        elif isinstance(e, Watermark):
            metrics.WATERMARK.labels(str(e.partition)).set(e.at)


async def policy_known(rt: Runtime) -> None:
    """Wait until the contact policy in force is known (before anything can be decided)."""
    if rt.policy_ready is not None and not rt.policy_ready.is_set():
        await rt.policy_ready.wait()


async def handle(rt: Runtime, partition: int, wire: Any) -> None:
    """Process one user-stream message (its stored form) on ``partition``, which owns its user."""
    await policy_known(rt)
    msg = from_wire(wire)
    try:
        effects = engine(rt).handle(TableStore(rt), partition, [msg])
    except Exception:
        # the cached profile may hold a half-applied change the table never got: drop it
        rt.profile_cache.pop(msg.canonical, None)
        raise
    await perform(rt, effects)


def forget_clocks(rt: Runtime) -> None:
    """Drop in-memory clocks and cached profiles (after a rebalance they reload from the tables)."""
    rt.clocks.clear()
    rt.profile_cache.clear()


async def resync_mirror(rt: Runtime) -> int:
    """Re-mirror every profile this worker owns (after table recovery: Redis may be stale)."""
    count = 0
    for key, raw in list(rt.profiles.items()):
        if raw is None:
            continue
        rt.mirror.put(key, Profile.loads(raw))
        count += 1
    return count


def register(app: Any, rt: Runtime) -> None:
    @app.agent(rt.user_stream, name="users")
    async def users(stream: Any) -> None:
        async def one(m: Any, value: bytes | None) -> None:
            await handle(rt, m.partition, orjson.loads(value or b"null"))

        await each_event(stream, rt.dlq, one)
