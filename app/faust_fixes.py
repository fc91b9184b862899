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
    where a user ends one to three events short after SIGKILLs; the fetch-loop fixes below
    removed the rest). The fix records such an ack as "no longer
    in flight" (so a rebalance does not wait for it) but not as committable. A message really
    processed while a rebalance began is then processed again after the seek, which
    deduplication absorbs: at least once holds.
    faust-streaming's compiled (Cython) stream iterator inlines the consumer's ack, so with the
    fix the app's streams run Faust's pure-Python iterator, which calls ``Consumer.ack``.

``ack_only_processed`` also replaces Faust's fetch loop and its commit-offset rule
    Four more ways faust-streaming 0.15 loses an event, each seen in worker logs or on the
    broker while chasing the same test's remaining one-run-in-eight loss:

    * records fetched while flow control is stopped (a rebalance, table recovery) are dropped,
      and Faust relies on the seek to committed offsets that follows; aiokafka skips that seek
      for a partition with no committed offset yet, so its first records were never fetched
      again (a partition's offsets 0..2 were fetched twice during recovery, delivered never);
    * the loop records a "gap" (offsets with no record, then treated as acked) whenever a
      fetched offset is more than one past the last offset it *read*, but that read offset is
      also set for a message whose delivery was abandoned, can survive the seek after a
      rebalance, and the range even includes the message being delivered (a log showed
      offsets 31..72 recorded as a gap after a rebalance);
    * with such a stale read offset the loop also drops every re-fetched message below it;
    * the head-of-queue check (``min(acked) - committed > 1``) lets a commit skip the message
      at the committed offset itself, and is skipped when the committed offset is 0 or unknown.

    The replacement loop delivers every fetched record or moves the fetch position back to
    the first one it did not deliver (same generation only: a new assignment fetches from the
    committed offsets anyway); duplicates after a seek are absorbed by event-id deduplication.
    Gaps come only from the log: aiokafka's fetch result says which offsets it read to return
    its records, and those it read without returning one (transaction markers, compacted
    records) are gaps. A partition is committed only when its run of acked-or-gap offsets
    starts exactly at its committed offset (or, before its first commit, at the first offset
    read since the assignment).

``ack_only_processed`` also re-fetches a stranded partition head
    Under CPU starvation a partition's commit was seen stuck for minutes (issue 18, finding 9):
    offsets 31 and 32 had been fetched and later offsets acked, but nothing would ever ack 31
    and 32 (no message of theirs in flight), so no commit passed them and a crash re-fed every
    later event. Whichever path dropped them (an ack skipped with no seek after it, a failed
    seek), the state is recognisable and repairable: the fetch loop checks every few seconds,
    and a partition whose head (its committed offset) has been delivered but is not acked, with
    no message of the partition in flight (queued for its stream or dequeued and not acked), at
    two checks in a row in one generation, is fetched again from its committed offset. The
    re-fetched copies of acked messages are dropped by event-id deduplication.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import types
from typing import Any

import faust.streams
from aiokafka.consumer.fetcher import FetchResult
from faust.transport.consumer import CONSUMER_FETCHING
from faust.types.tuples import ack_lock
from faust.utils.functional import consecutive_numbers
from mode.utils.futures import notify

_POLL_S = 1.0
_STRANDED_CHECK_S = 5.0
log = logging.getLogger(__name__)


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
        _patch_offsets(consumer)
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


class _Span(list[Any]):
    """The records aiokafka returned for one partition, with the offsets ``[begin, end)`` of
    the log it read to return them (records it skipped, like transaction markers, included)."""

    span: tuple[int, int]


def _record_spans() -> None:
    """Make aiokafka's ``FetchResult.getall`` say which log offsets it read (process-wide)."""
    if getattr(FetchResult.getall, "nba_spans", False):
        return
    getall = FetchResult.getall

    def getall_with_span(self: Any, max_records: int | None = None) -> list[Any]:
        records = self._partition_records
        begin = records.next_fetch_offset if records is not None else None
        batch = getall(self, max_records)
        if not batch or begin is None:
            return batch  # type: ignore[no-any-return]
        spanned = _Span(batch)
        spanned.span = (begin, self._assignment.state_value(self._topic_partition).position)
        return spanned

    getall_with_span.nba_spans = True  # type: ignore[attr-defined]
    FetchResult.getall = getall_with_span


def log_gaps(span: tuple[int, int], offsets: list[int]) -> list[tuple[int, int]]:
    """Offset ranges ``[begin, end)`` of ``span`` that hold no record (``offsets`` sorted)."""
    gaps, at = [], span[0]
    for offset in offsets:
        if offset > at:
            gaps.append((at, offset))
        at = max(at, offset + 1)
    if span[1] > at:
        gaps.append((at, span[1]))
    return gaps


def committable_offset(acked: list[int], committed: int | None) -> int | None:
    """The offset to commit after ``acked`` (sorted, gaps included), or ``None``.

    The acked run must start at the committed offset (the next message to process): a
    partition whose next message is not acked yet is not committed, whatever follows it."""
    if not acked or (committed is not None and acked[0] > committed):
        return None
    return int(next(consecutive_numbers(acked))[-1]) + 1


def stranded_head(
    committed: int | None, delivered: int | None, head_acked: bool, in_flight: bool
) -> int | None:
    """The committed offset if no one will ever ack it, else ``None``.

    It is stranded when the fetch loop has delivered it or a later record (``delivered``, the
    last offset it delivered, is at or past it), it is not acked, and no message of the
    partition is in flight (queued for the stream, or dequeued and not acked): every delivered
    record is acked or was dropped, and it was dropped."""
    if committed is None or delivered is None or delivered < committed or head_acked or in_flight:
        return None
    return committed


def _in_flight(self: Any) -> set[Any]:
    """The partitions with a message queued for a stream or dequeued and not acked yet."""
    busy = {m.tp for m in list(self._unacked_messages) if not m.acked}
    for channels in list(self.app.topics._topic_name_index.values()):
        for channel in list(channels):
            queue = getattr(channel, "queue", None)
            for event in list(getattr(queue, "_queue", ())):
                message = getattr(event, "message", None)
                if message is not None:
                    busy.add(message.tp)
    return busy


async def _refetch_stranded(self: Any) -> None:
    """Fetch again every partition whose head was stranded at this check and at the last one."""
    generation = self.app.consumer_generation_id
    busy = _in_flight(self)
    now: dict[Any, tuple[int, int]] = {}
    for tp in self.assignment():
        committed = self.nba_head(tp)
        acked = committed is not None and (
            committed in self._acked_index[tp] or bool(self._gap[tp].overlaps(committed))
        )
        head = stranded_head(committed, self.nba_delivered.get(tp), acked, tp in busy)
        if head is not None:
            now[tp] = (generation, head)
    again = {tp: key[1] for tp, key in now.items() if self.nba_stranded.get(tp) == key}
    self.nba_stranded = {tp: key for tp, key in now.items() if tp not in again}
    if again:
        log.warning("fetching again %d partitions whose next offset was never acked", len(again))
        for tp in again:
            self.nba_delivered.pop(tp, None)  # set again when a record is delivered
        await _fetch_again(self, again)


def _patch_offsets(consumer: Any) -> None:
    _record_spans()
    consumer.nba_base = {}  # tp -> first offset read since assignment, while nothing is committed
    consumer.nba_stranded = {}  # tp -> (generation, head offset) stranded at the last check
    consumer.nba_delivered = {}  # tp -> offset of the last record the fetch loop delivered

    consumer.nba_pending = {}  # tp -> offset taken out of the ack list for a commit (maybe failed)

    def head(tp: Any) -> int | None:
        """The next offset a commit must pass: the committed one, or a later one whose acks were
        already taken for a commit that may have failed (a failed commit leaves Faust's
        committed offset behind; without this the partition never committed again)."""
        committed = consumer._committed_offset[tp]
        base = committed if committed is not None else consumer.nba_base.get(tp)
        pending = consumer.nba_pending.get(tp)
        return int(pending) if pending is not None and (base is None or pending > base) else base

    def new_offset(tp: Any) -> int | None:
        acked, index = consumer._acked[tp], consumer._acked_index[tp]
        committed, base = consumer._committed_offset[tp], head(tp)
        pending: int | None = consumer.nba_pending.get(tp)
        retry = pending if pending is not None and (committed is None or pending > committed) else None
        if not acked:
            return retry
        gaps = consumer._gap[tp]
        if gaps:  # count the log's gaps below the highest ack as acked, as Faust does
            gaps.merge_overlaps()
            top = max(acked)
            spans = sorted(gaps.overlap(0, top), key=lambda iv: iv.begin)
            filled = [o for iv in spans for o in range(iv.begin, iv.end) if o not in index]
            acked.extend(filled)
            index.update(filled)
            if spans:
                gaps.chop(0, max(iv.end for iv in spans))
        acked.sort()
        offset = committable_offset(acked, base)
        if offset is None:
            return retry
        done = [o for o in acked if o < offset]
        acked[: len(done)] = []
        index.difference_update(done)
        consumer.nba_pending[tp] = offset
        return offset

    assigned = consumer.on_partitions_assigned

    async def on_partitions_assigned(tps: Any, generation_id: int = 0) -> None:
        consumer.nba_base.clear()
        consumer.nba_delivered.clear()  # Faust's read offsets are set by seeks too: not a delivery
        consumer.nba_stranded.clear()
        consumer.nba_pending.clear()
        await assigned(tps, generation_id)

    consumer._new_offset = new_offset
    consumer.nba_head = head
    consumer.on_partitions_assigned = on_partitions_assigned
    consumer._drain_messages = types.MethodType(_drain_messages, consumer)


def _note_gaps(self: Any, tp: Any, batch: Any) -> None:
    """Record the offsets aiokafka read for ``batch`` without a record as gaps (acked)."""
    span = getattr(batch, "span", None)
    if span is None or not self.app.topics.acks_enabled_for(tp.topic):
        return
    committed = self._committed_offset[tp]
    if committed is None:
        self.nba_base.setdefault(tp, span[0])
    for begin, end in log_gaps(span, [r.offset for r in batch]):
        begin = max(begin, committed or 0)
        if begin < end:
            self._gap[tp].addi(begin, end)


async def _drain_messages(self: Any, fetcher: Any) -> None:  # pragma: no cover - runs in a worker
    """Faust's fetch loop (``Consumer._drain_messages`` and ``getmany``) without its read-offset
    gaps and drops, and with every fetched record delivered or fetched again (see module doc)."""
    consumer_should_stop = self._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    commit_every = self._commit_every
    next_check = time.monotonic() + _STRANDED_CHECK_S  # a liveness rule: the process's clock
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            self.diag.set_flag(CONSUMER_FETCHING)
            if time.monotonic() >= next_check:
                next_check = time.monotonic() + _STRANDED_CHECK_S
                if self.flow_active and not self.should_stop:
                    await _refetch_stranded(self)
            records, active = await self._wait_next_records(1.0)
            if records is None or self.should_stop:
                continue
            generation = self.app.consumer_generation_id
            for tp, batch in records.items():
                _note_gaps(self, tp, batch)
            undelivered: dict[Any, int] = {}  # tp -> offset of its first record not delivered
            for n, (tp, record) in enumerate(self.scheduler.iterate(records)):
                if tp in undelivered:
                    continue
                if (
                    not self.flow_active
                    or self.should_stop
                    or self.app.consumer_generation_id != generation
                    or not (active is None or tp in active or tp in self._buffered_partitions)
                ):
                    undelivered[tp] = record.offset
                    continue
                if n % 100 == 99:
                    await asyncio.sleep(0)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
                self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                message = self._to_message(tp, record)
                callback = self.callback(message)
                done = await self.wait_first(callback, self.suspend_flow.wait())
                if callback not in done.done:
                    undelivered[tp] = record.offset
                else:
                    self._read_offset[tp] = record.offset  # read by Faust's monitor only
                    self.nba_delivered[tp] = record.offset
            if undelivered and self.app.consumer_generation_id == generation:
                await _fetch_again(self, undelivered)
            self.diag.unset_flag(CONSUMER_FETCHING)
    except self.consumer_stopped_errors:
        if self.transport.app.should_stop:
            return
        raise
    except asyncio.CancelledError:
        if self.transport.app.should_stop:
            return
        raise
    finally:
        self.diag.unset_flag(CONSUMER_FETCHING)


async def _fetch_again(self: Any, offsets: dict[Any, int]) -> None:
    """Move the fetch position of each partition back to its first record not delivered.

    Faust drops what it fetched while flow control is stopped (a rebalance, table recovery)
    and relies on the seek to committed offsets that follows, which aiokafka skips for a
    partition with no committed offset: those records were never fetched again (found by
    ``tests/integration/test_crash_recovery.py``). Only for the same generation: after a new
    assignment aiokafka fetches from the committed offsets anyway."""
    assigned = self.assignment()
    mine = {tp: offset for tp, offset in offsets.items() if tp in assigned}
    if mine:
        try:
            await self._thread.seek_wait(mine)
        except Exception as exc:  # a rebalance took the partition meanwhile: it restarts from its commit
            # a warning: if the partition is still ours, its undelivered records wait for the next
            # rebalance, and its commits stop at the first of them (see issue 18, finding 9)
            log.warning("not fetching %d partitions again (%r)", len(mine), exc)
