"""Faust work-arounds (app.faust_fixes): the producer buffer drains completely before a commit,
the ack of a message a stream skipped never becomes committable, and no commit runs past the
next message to process (gaps come only from offsets the fetch read without a record), and a
partition head that no one will ack is fetched again."""

from __future__ import annotations

import asyncio
import types
from typing import Any

import faust
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from app.faust_fixes import (
    _refetch_stranded,
    ack_only_processed,
    committable_offset,
    drain_before_commit,
    log_gaps,
    stranded_head,
)


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


def test_log_gaps_are_the_offsets_read_without_a_record() -> None:
    assert log_gaps((10, 15), [10, 11, 12, 13, 14]) == []
    # a transaction marker at 12 and two at the end of the read: both are gaps
    assert log_gaps((10, 16), [10, 11, 13]) == [(12, 13), (14, 16)]
    # the read began at a marker
    assert log_gaps((9, 12), [10, 11]) == [(9, 10)]


def test_nothing_is_committed_past_the_next_message_to_process() -> None:
    assert committable_offset([], 5) is None
    assert committable_offset([6, 7, 8], 5) is None  # faust 0.15 would commit 9 and lose 5
    assert committable_offset([5, 6, 8], 5) == 7
    assert committable_offset([1, 2], 0) is None  # faust skips its check when committed is 0
    assert committable_offset([0, 1], 0) == 2
    assert committable_offset([3, 4], None) == 5  # nothing committed yet: the first run counts


def _fixed_consumer(name: str) -> Any:
    """The consumer of a fresh app with the fixes, acking topic ``t``."""
    app = faust.App(name, autodiscover=False)
    app.topics._acking_topics.add("t")
    ack_only_processed(app)
    return app.consumer


def test_log_gaps_fill_the_run_but_never_a_message_that_was_read() -> None:
    consumer = _fixed_consumer("t-offsets")
    tp = TP("t", 0)
    consumer._committed_offset[tp] = 10
    consumer._gap[tp].addi(12, 13)  # a marker at 12
    consumer._acked[tp].extend([10, 11, 13, 15])  # 14 was read but not processed yet
    consumer._acked_index[tp].update([10, 11, 13, 15])
    assert consumer._new_offset(tp) == 14
    assert consumer._acked[tp] == [15]
    consumer._committed_offset[tp] = 14
    assert consumer._new_offset(tp) is None


def test_a_failed_commit_does_not_stop_a_partition_from_committing_again() -> None:
    consumer = _fixed_consumer("t-failed-commit")
    tp = TP("t", 0)
    consumer._committed_offset[tp] = 10
    consumer._acked[tp].extend([10, 11, 12])
    consumer._acked_index[tp].update([10, 11, 12])
    assert consumer._new_offset(tp) == 13  # the acks up to 12 are taken for this commit...
    # ...which raises (the broker is away): Faust's committed offset stays at 10
    assert consumer._new_offset(tp) == 13  # nothing new: the same commit is tried again
    consumer._acked[tp].extend([13, 14])
    consumer._acked_index[tp].update([13, 14])
    assert consumer._new_offset(tp) == 15  # before the fix: None for ever (10 is not acked)
    consumer._committed_offset[tp] = 15
    assert consumer._new_offset(tp) is None
    assert consumer.nba_head(tp) == 15


class _Record:
    def __init__(self, offset: int) -> None:
        self.offset = offset


class _PartitionRecords:
    """What aiokafka's fetcher iterates: records, with markers it skips (offsets not returned)."""

    def __init__(self, begin: int, offsets: list[int], end: int) -> None:
        self.next_fetch_offset, self._offsets, self._end = begin, offsets, end

    def __iter__(self) -> _PartitionRecords:
        return self

    def __next__(self) -> _Record:
        if not self._offsets:
            self.next_fetch_offset = self._end  # trailing markers are read too
            raise StopIteration
        offset = self._offsets.pop(0)
        self.next_fetch_offset = offset + 1
        return _Record(offset)


class _State:
    paused = False

    def __init__(self, position: int) -> None:
        self.position = position

    def consumed_to(self, position: int) -> None:
        self.position = position


class _Assignment:
    active = True

    def __init__(self, state: _State) -> None:
        self.state = state

    def state_value(self, tp: Any) -> _State:
        return self.state


def test_aiokafka_fetch_results_carry_the_offsets_they_read() -> None:
    from aiokafka.consumer.fetcher import FetchResult

    app = faust.App("t-spans", autodiscover=False)
    ack_only_processed(app)
    app.consumer  # noqa: B018 - creating the consumer installs the fix
    state = _State(9)
    result = FetchResult(
        TP("t", 0),
        assignment=_Assignment(state),
        partition_records=_PartitionRecords(9, [10, 11, 13], 15),
        backoff=0,
    )
    batch = result.getall()
    assert [r.offset for r in batch] == [10, 11, 13]
    assert batch.span == (9, 15)  # type: ignore[attr-defined]
    assert log_gaps(batch.span, [10, 11, 13]) == [(9, 10), (12, 13), (14, 15)]  # type: ignore[attr-defined]


def test_before_the_first_commit_the_run_starts_at_the_first_offset_read() -> None:
    consumer = _fixed_consumer("t-base")
    tp = TP("t", 0)
    consumer.nba_base[tp] = 0  # what the fetch loop notes when it first reads the partition
    consumer._acked[tp].extend([1, 2])  # 0 was read but is not processed yet
    consumer._acked_index[tp].update([1, 2])
    assert consumer._committed_offset[tp] is None
    assert consumer._new_offset(tp) is None
    consumer._acked[tp].insert(0, 0)
    assert consumer._new_offset(tp) == 3


def test_a_fetch_notes_its_gaps_and_the_first_offset_read() -> None:
    from app.faust_fixes import _note_gaps, _Span

    consumer = _fixed_consumer("t-note")
    tp = TP("t", 0)
    batch = _Span([_Record(5), _Record(7)])
    batch.span = (4, 9)
    _note_gaps(consumer, tp, batch)
    assert consumer.nba_base[tp] == 4
    assert sorted((iv.begin, iv.end) for iv in consumer._gap[tp]) == [(4, 5), (6, 7), (8, 9)]


def test_a_head_is_stranded_when_delivered_not_acked_and_nothing_in_flight() -> None:
    assert stranded_head(31, 97, False, False) == 31  # issue 18, finding 9: fetched, never acked
    assert stranded_head(31, 31, False, False) == 31
    assert stranded_head(31, 97, False, True) is None  # a message is on its way to the stream
    assert stranded_head(31, 97, True, False) is None  # the head is acked: committable
    assert stranded_head(31, 30, False, False) is None  # not delivered yet
    assert stranded_head(31, None, False, False) is None
    assert stranded_head(None, 5, False, False) is None  # nothing committed yet: not this rule


class _Seeks:
    def __init__(self) -> None:
        self.calls: list[dict[TP, int]] = []

    async def seek_wait(self, offsets: dict[TP, int]) -> None:
        self.calls.append(dict(offsets))


class _NoGaps:
    def overlaps(self, offset: int) -> bool:
        return False


async def test_a_stranded_partition_is_fetched_again_after_two_checks_in_one_generation() -> None:
    tp, other = TP("t", 0), TP("t", 1)
    queued = types.SimpleNamespace(message=types.SimpleNamespace(tp=other))
    channel = types.SimpleNamespace(queue=types.SimpleNamespace(_queue=[queued]))
    consumer = types.SimpleNamespace(
        app=types.SimpleNamespace(
            consumer_generation_id=3, topics=types.SimpleNamespace(_topic_name_index={"t": [channel]})
        ),
        _unacked_messages=set(),
        _acked_index={tp: {33, 34}, other: set()},
        _gap={tp: _NoGaps(), other: _NoGaps()},
        _committed_offset={tp: 31, other: 7},
        nba_delivered={tp: 97, other: 9},  # other's head waits in its stream's queue
        nba_stranded={},
        nba_head=lambda tp: {TP("t", 0): 31, TP("t", 1): 7}[tp],
        _thread=_Seeks(),
        assignment=lambda: {tp, other},
    )
    await _refetch_stranded(consumer)
    assert consumer._thread.calls == []  # once could be a message on its way: wait a check
    await _refetch_stranded(consumer)
    assert consumer._thread.calls == [{tp: 31}]
    assert tp not in consumer.nba_delivered  # until the re-fetched head is delivered
    consumer.nba_delivered[tp] = 40
    await _refetch_stranded(consumer)  # fetched again: the count starts over
    assert consumer._thread.calls == [{tp: 31}]
    consumer.app.consumer_generation_id = 4  # a rebalance in between: not the same stranding
    await _refetch_stranded(consumer)
    assert consumer._thread.calls == [{tp: 31}]
