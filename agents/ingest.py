"""``ingest``: ingress topics -> validation -> identity -> the user's partition.

Partitioned like the ingress topics (by anonymous id, else user id). An event whose canonical
user has the same raw id as the message key is already on that user's partition and is handed
to :mod:`agents.users` inline; the others (events that link an anonymous id to a user) hop
through the user stream.
"""

from __future__ import annotations

import logging
from typing import Any

from agents import metrics, users
from agents.dlq import each_event
from agents.runtime import Runtime
from models.facts import EventFacts
from models.identity import LinkOutcome, anon_key, resolve, routing_id
from schemas.validate import Rejected, parse_ingress_topic, validate

log = logging.getLogger(__name__)


async def _route(rt: Runtime, partition: int, key: bytes | None, msg: dict[str, Any]) -> None:
    if key is not None and key == routing_id(msg["canonical"]).encode():
        await users.handle(rt, partition, msg)
    else:
        await users.hop(rt, msg)


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
    metrics.EVENTS_CONSUMED.labels(event.channel, event.type.value).inc()
    linked = rt.identity.get(event.anonymous_id) if event.anonymous_id else None
    res = resolve(event.user_id, event.anonymous_id, linked.decode() if linked else None)
    if res.outcome is LinkOutcome.new:
        assert event.anonymous_id is not None and event.user_id is not None
        rt.identity[event.anonymous_id] = event.user_id.encode()
        metrics.IDENTITY_LINKS.inc()
    if res.outcome in (LinkOutcome.new, LinkOutcome.known):
        # (re-)link on every event that carries both ids: a crash can persist the identity
        # table while losing the merge message; the anonymous profile re-sends its merge
        assert event.anonymous_id is not None
        link = {"kind": "link", "canonical": anon_key(event.anonymous_id), "target": res.canonical}
        await _route(rt, partition, key, link)
    if res.outcome is LinkOutcome.conflict:
        metrics.IDENTITY_CONFLICTS.inc()
        log.warning(
            "identity conflict: anonymous id already linked to another user (event %s)",
            event.event_id,
        )
    facts = EventFacts.from_event(event, result.spend)
    msg = {
        "kind": "event",
        "canonical": res.canonical,
        "facts": facts.to_dict(),
        "arrived_ms": arrived_ms,
    }
    await _route(rt, partition, key, msg)
    return None


def register(app: Any, rt: Runtime) -> None:
    @app.agent(rt.ingress, name="ingest")
    async def ingest(stream: Any) -> None:
        async def one(m: Any, value: bytes | None) -> Rejected | None:
            return await handle(rt, m.topic, m.partition, m.key, value, m.timestamp)

        await each_event(stream, rt.dlq, one)
