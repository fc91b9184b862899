"""Faust work-arounds (app.faust_fixes): the producer buffer drains completely before a commit,
and the ack of a message a stream skipped never becomes committable."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from app.faust_fixes import ack_only_processed, drain_before_commit


async def _fill_slow_buffer(app: faust.App, n: int, per_message_s: float) -> Any:
    buffer = app.producer.buffer
    sent: list[int] = []

    async def slow_publish(fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(per_message_s)
        sent.append(fut)

    class _Channel:
        publish_message = staticmethod(slow_publish)

    class _Message:
        channel = _Channel()

    class _Fut:
        message = _Message()

    for _ in range(n):
        buffer.put(_Fut())
    await buffer.start()
    return buffer, sent


async def test_stock_flush_returns_with_messages_still_queued() -> None:
    app = faust.App("t-stock", autodiscover=False)
    buffer, _ = await _fill_slow_buffer(app, 3, 0.3)
    try:
        await buffer.flush()
        assert buffer.size > 0  # the faust behaviour the fix exists for
        await asyncio.sleep(1.2)  # let it drain so that stop() can flush
    finally:
        await buffer.stop()


async def test_drained_flush_waits_for_every_message() -> None:
    app = faust.App("t-fixed", autodiscover=False)
    drain_before_commit(app)
    buffer, sent = await _fill_slow_buffer(app, 3, 0.3)
    try:
        await buffer.flush()
        assert buffer.size == 0 and len(sent) == 3
    finally:
        await buffer.stop()


def _message(app: faust.App, offset: int, generation: int) -> ConsumerMessage:
    tp = TP("t", 0)
    msg = ConsumerMessage("t", 0, offset, 0.0, 0, [], b"k", b"v", None, 1, 1, tp, generation_id=generation)
    msg.refcount = 1
    app.consumer._unacked_messages.add(msg)
    return msg


def _committable(app: faust.App) -> list[int]:
    return sorted(app.consumer._acked[TP("t", 0)])


def test_stock_ack_of_a_skipped_message_is_committable() -> None:
    app = faust.App("t-ack-stock", autodiscover=False)
    app.topics._acking_topics.add("t")
    app.consumer_generation_id = 2
    app.flow_control.resume()
    stale = _message(app, 5, generation=1)  # fetched before the rebalance: the stream skips it
    stale.ack(app.consumer)
    assert _committable(app) == [5]  # the faust behaviour the fix exists for


def test_skipped_messages_are_not_committable_but_no_longer_in_flight() -> None:
    app = faust.App("t-ack-fixed", autodiscover=False)
    ack_only_processed(app)
    assert faust.streams._CStreamIterator is None  # the compiled iterator would bypass Consumer.ack
    app.topics._acking_topics.add("t")
    app.consumer_generation_id = 2
    app.flow_control.resume()
    stale, current = _message(app, 5, generation=1), _message(app, 6, generation=2)
    assert stale.ack(app.consumer) is False and current.ack(app.consumer) is True
    app.flow_control.suspend()  # a rebalance began: the stream skips what it dequeues
    during = _message(app, 7, generation=2)
    during.ack(app.consumer)
    assert _committable(app) == [6]
    assert not app.consumer._unacked_messages  # a rebalance does not wait for skipped messages
