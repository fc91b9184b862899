"""``ingest``: ingress topics -> validation -> the engine (identity, then the user's step).

Partitioned like the ingress topics (by anonymous id, else user id). The engine
(:meth:`models.engine.Engine.ingest`) resolves the event's identity on this partition, applies
it here when this partition owns its user (its key is the user's raw id: nearly every event),
and otherwise says to hop it through the user stream; this agent validates and carries the
effects out (:func:`agents.users.perform`).
"""

from __future__ import annotations

from typing import Any

from agents import tables, users
from agents.dlq import each_event
from agents.runtime import Runtime
from models.facts import EventFacts
from models.identity import anon_key, user_key
from schemas.validate import Rejected, parse_ingress_topic, validate


async def handle(
    rt: Runtime, topic: str, partition: int, key: bytes | None, value: bytes | None, arrived_ms: int
) -> Rejected | None:
    """Process one ingress message; return the rejection if it was refused."""
    parsed = parse_ingress_topic(rt.prefix, topic)
    channel, etype = parsed if parsed else (None, None)
    result = validate(
        value,
        topic_channel=channel,
        topic_type=etype,
        policy=rt.validation,
        key=key,
        check_key=True,
    )
    if isinstance(result, Rejected):
        return result
    event = result.event
    await users.policy_known(rt)
    try:
        effects = tables.engine(rt).ingest(
            tables.TableStore(rt),
            partition,
            key,
            EventFacts.from_event(event, result.spend),
            event.user_id,
            event.anonymous_id,
            arrived_ms,
        )
    except Exception:
        # a cached profile may hold a half-applied change the table never got: drop it
        for canonical in (
            user_key(event.user_id) if event.user_id else None,
            anon_key(event.anonymous_id) if event.anonymous_id else None,
        ):
            rt.profile_cache.pop(canonical or "", None)
        raise
    await users.perform(rt, effects)
    return users.refusal(effects)


def record_ms(timestamp_s: float | None) -> int:
    """The record timestamp in milliseconds (Faust gives it in seconds; ``0``: none).

    >>> record_ms(1_767_225_600.25), record_ms(None)
    (1767225600250, 0)
    """
    return round(timestamp_s * 1000) if timestamp_s else 0


def register(app: Any, rt: Runtime) -> None:
    @app.agent(rt.ingress, name="ingest")
    async def ingest(stream: Any) -> None:
        async def one(m: Any, value: bytes | None) -> Rejected | None:
            return await handle(rt, m.topic, m.partition, m.key, value, record_ms(m.timestamp))

        await each_event(stream, rt.dlq, one)
