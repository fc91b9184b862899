"""The ``users`` agent: the engine (:mod:`models.engine`) over the worker's tables.

This module decides nothing. It reads ``nba.user-stream`` messages into the engine's typed
messages, lends the engine the partition's state (:class:`agents.tables.TableStore`, the Faust tables
behind a cache of live profiles, mirrored to Redis) and carries out the effects the engine returns:
sends, metrics and hops. :mod:`agents.ingest` and the routed agents (consent, feedback, erase)
use the same :func:`perform` and :func:`hop`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import orjson
from pydantic import BaseModel

from agents import metrics
from agents.dlq import each_event
from agents.records import to_action, to_cancelled, to_lifecycle, to_record, to_sample
from agents.runtime import Runtime
from agents.tables import TableStore, engine
from models.engine import (
    Count,
    Effect,
    EventApplied,
    Hop,
    LogDecision,
    Outcome,
    PublishAction,
    PublishCancel,
    PublishLifecycle,
    Refused,
    TombstoneConsent,
    Train,
    UserMsg,
    Watermark,
    from_wire,
    to_wire,
)
from models.identity import routing_id
from schemas.validate import Rejected

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


async def _train(rt: Runtime, sample: BaseModel) -> None:
    await rt.training.send(value=sample.model_dump_json().encode())


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
            await _train(rt, to_sample(e))
        elif isinstance(e, Outcome):
            o = e.record
            metrics.OUTCOMES.labels(o.decided, o.group, str(o.y).lower()).inc()
            if e.learnable:
                await _train(rt, o)
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


def refusal(effects: Iterable[Effect]) -> Rejected | None:
    """The first event the engine gave up on in ``effects``, as a rejection to dead-letter
    (the message that carried it: an ingress event, or a user-stream message)."""
    for e in effects:
        if isinstance(e, Refused):
            return Rejected(e.reason, e.detail)
    return None


async def policy_known(rt: Runtime) -> None:
    """Wait until the contact policy in force is known (before anything can be decided)."""
    if not rt.policy_ready.is_set():
        await rt.policy_ready.wait()


async def handle(rt: Runtime, partition: int, wire: Any) -> Rejected | None:
    """Process one user-stream message (its stored form) on ``partition``, which owns its user;
    the rejection when an event it carried was given up on (``late``)."""
    await policy_known(rt)
    msg = from_wire(wire)
    try:
        effects = engine(rt).handle(TableStore(rt), partition, [msg])
    except Exception:
        # the cached profile may hold a half-applied change the table never got: drop it
        rt.profile_cache.pop(msg.canonical, None)
        raise
    await perform(rt, effects)
    metrics.USER_STREAM_MESSAGES.labels(msg.kind).inc()
    return refusal(effects)


def register(app: Any, rt: Runtime) -> None:
    @app.agent(rt.user_stream, name="users")
    async def users(stream: Any) -> None:
        async def one(m: Any, value: bytes | None) -> Rejected | None:
            return await handle(rt, m.partition, orjson.loads(value or b"null"))

        await each_event(stream, rt.dlq, one, errors_topic=rt.dlq_internal)
