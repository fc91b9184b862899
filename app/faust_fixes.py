"""Work-arounds for faust-streaming behaviour that would break the service's promises.

``drain_before_commit``
    Faust commits a source offset only after ``producer.flush()``, which first drains its
    ``ProducerBuffer`` (the queue that table changelog writes go through). faust-streaming 0.15's
    ``ProducerBuffer.flush`` gives up after waiting 0.1 s for one message to leave the buffer, so
    under load the offset of an event can be committed while the changelog write of that event
    is still queued; a crash then loses the write, and the event is never processed again (found
    by ``tests/integration/test_crash_recovery.py``). The replacement waits until the buffer is
    empty *and* the message the buffer's sender has taken out of it has reached the Kafka client,
    which is what the commit needs (the client's own flush follows).
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from typing import Any

_POLL_S = 1.0


async def _drain(buffer: Any) -> None:
    while buffer.size or buffer.nba_in_flight:
        if buffer.state != "running":
            raise RuntimeError("Cannot flush: producer not running")
        buffer.message_sent.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(buffer.message_sent.wait(), timeout=_POLL_S)


def drain_before_commit(app: Any) -> None:
    """Make ``app``'s producer buffer ``flush()`` wait until the buffer is empty."""
    buffer = app.producer.buffer
    send = buffer._send_pending
    buffer.nba_in_flight = 0

    async def counted_send(fut: Any) -> None:
        buffer.nba_in_flight += 1
        try:
            await send(fut)
        finally:
            buffer.nba_in_flight -= 1

    buffer._send_pending = counted_send
    buffer.flush = types.MethodType(_drain, buffer)
