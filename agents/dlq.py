"""Dead-lettering: one place that logs, counts and publishes a refused message.

Promises:

* every message an agent gives up on gets a record in a dead-letter topic with its reason:
  producer-facing refusals go to ``events.dlq``; errors on the worker's internal topics go to
  ``nba.dlq-internal`` (same contract, :class:`schemas.dlq.DeadLetter`);
* every record fits the producer limit: an original key and value larger than
  :data:`schemas.dlq.MAX_ORIGINAL_BYTES` together (or a key over :data:`MAX_KEY_BYTES`) are cut,
  with the value's size and SHA-256 kept, and marked not replayable;
* publishing the record is retried; a record that still cannot be published is counted
  (``nba_dlq_send_failures_total``) and logged with its source topic, partition and offset, and
  the stream goes on (the source message stays in its topic until retention).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from agents import metrics
from schemas.dlq import MAX_ORIGINAL_BYTES, DeadLetter, Reason
from schemas.validate import Rejected

log = logging.getLogger(__name__)
MAX_KEY_BYTES = 4096
"""The most of an original key a dead letter holds (and the longest key it is published under:
a longer one is replaced by its SHA-256)."""
SEND_ATTEMPTS = 6
"""Tries to publish one record, 0.5 s apart doubling (about 15 s in all)."""


def record(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    reason: Reason,
    detail: str,
    received_at: datetime | None = None,
) -> DeadLetter:
    """The dead-letter record of one message (its original cut to fit, when needed).

    >>> r = record(topic="t", partition=0, offset=1, key=None, value=b"x" * (600 * 1024),
    ...            reason=Reason.oversized, detail="too big")
    >>> r.truncated, r.replayable, r.original_bytes, len(r.model_dump_json()) < 1_000_000
    (True, False, 614400, True)
    """
    original = value or b""
    held_key = key[:MAX_KEY_BYTES] if key is not None else None
    room = MAX_ORIGINAL_BYTES - len(held_key or b"")
    truncated = len(original) > room or (key is not None and len(key) > MAX_KEY_BYTES)
    return DeadLetter(
        reason=reason,
        detail=detail[:2048],
        topic=topic,
        partition=partition,
        offset=offset,
        key_b64=base64.b64encode(held_key).decode() if held_key is not None else None,
        value_b64=base64.b64encode(original[:room]).decode(),
        received_at=received_at or datetime.now(UTC),
        original_bytes=len(original),
        original_sha256=hashlib.sha256(original).hexdigest(),
        truncated=truncated,
        replayable=not truncated,
    )


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
    internal: bool = False,
) -> None:
    """Publish the original bytes with the reason to ``dlq_topic``; log and count it.

    ``internal``: ``dlq_topic`` is ``nba.dlq-internal`` (counted by source topic as well).
    """
    metrics.EVENTS_INVALID.labels(reason.value).inc()
    if internal:
        metrics.INTERNAL_DEAD_LETTERS.labels(topic).inc()
    level = logging.ERROR if reason is Reason.processing_error else logging.INFO
    # a processing error's detail (an exception's repr) may name a user: the log gets its class
    shown = detail.split("(", 1)[0] if reason is Reason.processing_error else detail[:300]
    log.log(level, "dead-letter %s at %s[%d]@%d: %s", reason.value, topic, partition, offset, shown)
    rec = record(
        topic=topic,
        partition=partition,
        offset=offset,
        key=key,
        value=value,
        reason=reason,
        detail=detail,
    )
    payload = rec.model_dump_json().encode()
    if key is not None and len(key) > MAX_KEY_BYTES:
        key = hashlib.sha256(key).hexdigest().encode()
    pause = 0.5
    for attempt in range(1, SEND_ATTEMPTS + 1):
        try:
            await dlq_topic.send(key=key, value=payload)
            return
        except Exception as exc:  # the broker or the producer failed: try again, then give up
            if attempt == SEND_ATTEMPTS:
                metrics.DLQ_SEND_FAILURES.inc()
                log.error(
                    "could not publish the dead letter of %s[%d]@%d (%s) after %d tries: %r",
                    topic,
                    partition,
                    offset,
                    reason.value,
                    attempt,
                    exc,
                )
                return
            await asyncio.sleep(pause)
            pause *= 2


Handler = Callable[[Any, bytes | None], Awaitable[Rejected | None]]


async def each_event(
    stream: Any, dlq_topic: Any, handler: Handler, *, errors_topic: Any | None = None
) -> None:
    """Run ``handler(message, value)`` on every event of ``stream``, one at a time.

    Errors are handled here, per event, because Faust acks an event even when the agent raises:
    a rejection or an exception is dead-lettered with the source topic, partition and offset,
    logged and counted, and the stream goes on. Rejections go to ``dlq_topic``; exceptions go
    to ``errors_topic`` when it is given (an internal topic's ``nba.dlq-internal``), else to
    ``dlq_topic``.
    """
    async for ev in stream.events():
        m = ev.message
        target, internal = dlq_topic, False
        try:
            rejected = await handler(m, ev.value)
            if rejected is None:
                continue
            reason, detail = rejected.reason, rejected.detail
        except Exception as exc:  # one bad event never stops the stream
            reason, detail = Reason.processing_error, repr(exc)
            if errors_topic is not None:
                target, internal = errors_topic, True
        await dead_letter(
            target,
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            key=m.key,
            value=ev.value,
            reason=reason,
            detail=detail,
            internal=internal,
        )
