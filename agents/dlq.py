"""Dead-lettering: one place that logs, counts and publishes a refused message."""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from agents import metrics
from schemas.dlq import DeadLetter, Reason
from schemas.validate import Rejected

log = logging.getLogger(__name__)
_MAX_ORIGINAL = 1024 * 1024


async def dead_letter(
    dlq_topic: Any,
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: Reason,
    detail: str,
) -> None:
    """Publish the original bytes with the reason to ``events.dlq``; log and count it."""
    metrics.EVENTS_INVALID.labels(reason.value).inc()
    level = logging.ERROR if reason is Reason.processing_error else logging.INFO
    log.log(
        level,
        "dead-letter %s at %s[%d]@%d: %s",
        reason.value,
        topic,
        partition,
        offset,
        detail[:300],
    )
    record = DeadLetter(
        reason=reason,
        detail=detail[:2048],
        topic=topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        value_b64=base64.b64encode((value or b"")[:_MAX_ORIGINAL]).decode(),
        received_at=datetime.now(UTC),
    )
    await dlq_topic.send(key=key, value=record.model_dump_json().encode())


Handler = Callable[[Any, bytes | None], Awaitable[Rejected | None]]


async def each_event(stream: Any, dlq_topic: Any, handler: Handler) -> None:
    """Run ``handler(message, value)`` on every event of ``stream``, one at a time.

    Errors are handled here, per event, because Faust acks an event even when the agent raises:
    a rejection or an exception is dead-lettered with the source topic, partition and offset,
    logged and counted, and the stream goes on.
    """
    async for ev in stream.events():
        m = ev.message
        try:
            rejected = await handler(m, ev.value)
            if rejected is None:
                continue
            reason, detail = rejected.reason, rejected.detail
        except Exception as exc:  # one bad event never stops the stream
            reason, detail = Reason.processing_error, repr(exc)
        await dead_letter(
            dlq_topic,
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            key=m.key,
            value=ev.value,
            reason=reason,
            detail=detail,
        )
