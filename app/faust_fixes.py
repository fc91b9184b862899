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

``ack_only_processed``
    A Faust stream that dequeues a message while flow control is stopped (a rebalance is under
    way) or whose generation is older than the consumer's *skips* the message, because the
    consumer will seek back and fetch it again, but still *acks* it (``Stream._py_aiter``).
    After an eager rebalance the revoked partitions' ack lists are cleared and the same
    partitions are assigned again, so the acks of skipped messages land in the new
    generation's lists: once the message before them is processed, Faust commits past the
    skipped ones, and if the worker dies before their re-fetched copies are processed they are
    lost (found by reading Faust's code while chasing ``tests/integration/test_crash_recovery.py``,
    where a user ends one to three events short after SIGKILLs; this fix alone does not remove
    every such loss: see the README's known defect). The fix records such an ack as "no longer
    in flight" (so a rebalance does not wait for it) but not as committable. A message really
    processed while a rebalance began is then processed again after the seek, which
    deduplication absorbs: at least once holds.
    faust-streaming's compiled (Cython) stream iterator inlines the consumer's ack, so with the
    fix the app's streams run Faust's pure-Python iterator, which calls ``Consumer.ack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import types
from typing import Any

import faust.streams
from faust.types.tuples import ack_lock
from mode.utils.futures import notify

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


def ack_only_processed(app: Any) -> None:
    """Make ``app``'s consumer ignore the ack of a message its stream skipped (see module doc).

    The consumer is patched when Faust creates it (creating it here, before the app is fully
    declared, would change Faust's start-up order). Streams use Faust's pure-Python iterator:
    the compiled one writes acks into the consumer's state without calling ``Consumer.ack``."""
    faust.streams._CStreamIterator = None
    new_consumer = app._new_consumer

    def patched_consumer() -> Any:
        consumer = new_consumer()
        _patch_ack(app, consumer)
        return consumer

    app._new_consumer = patched_consumer


def _patch_ack(app: Any, consumer: Any) -> None:
    ack = consumer.ack

    def skipped(message: Any) -> bool:
        return bool(not app.flow_control.is_active() or message.generation_id != app.consumer_generation_id)

    def ack_processed(message: Any) -> bool:
        if not skipped(message):
            return bool(ack(message))
        with ack_lock:
            if not message.acked:
                message.acked = True
                consumer._unacked_messages.discard(message)
                notify(consumer._waiting_for_ack)
        return False

    consumer.ack = ack_processed
