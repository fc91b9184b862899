"""Reading topics outside Faust's consumer group: following a compacted topic in every worker (a
plain aiokafka consumer with no group reads all partitions from the beginning, then keeps
following; the catalog and model snapshots), and reading a range of offsets (the learner)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient


async def follow(
    topic: str,
    client_kwargs: dict[str, Any],
    apply: Callable[[bytes | None, bytes | None, int], None],
    caught_up: asyncio.Event | None = None,
) -> None:
    """Call ``apply(key, value, offset)`` for every record of ``topic``, forever.

    ``caught_up`` is set once every record that existed at start has been applied.
    """
    consumer = AIOKafkaConsumer(enable_auto_commit=False, auto_offset_reset="earliest", **client_kwargs)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or {0})]
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(partitions)
        remaining = {tp for tp, end in ends.items() if end > 0}
        if not remaining and caught_up is not None:
            caught_up.set()
        while True:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                for record in records:
                    apply(record.key, record.value, record.offset)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    if not remaining and caught_up is not None:
                        caught_up.set()
    finally:
        await consumer.stop()


async def read_range(
    topic: str, partition: int, start: int, end: int, client_kwargs: dict[str, Any]
) -> list[tuple[int, bytes | None]]:
    """The records of ``topic``/``partition`` at offsets [start, end), as (offset, value)."""
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs)
    await consumer.start()
    out: list[tuple[int, bytes | None]] = []
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        out = await _drain(consumer, tp, end)
    finally:
        await consumer.stop()
    return out


async def _drain(consumer: AIOKafkaConsumer, tp: TopicPartition, end: int) -> list[tuple[int, bytes | None]]:
    """The records of ``tp`` from the consumer's position up to offset ``end``, as (offset, value)."""
    out: list[tuple[int, bytes | None]] = []
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=1000)
        out += [(r.offset, r.value) for r in batch.get(tp, []) if r.offset < end]
    return out


async def read_all(topic: str, client_kwargs: dict[str, Any]) -> list[bytes | None]:
    """Every record of ``topic`` (all partitions) from the beginning to its end at the call."""
    admin = AIOKafkaAdminClient(**client_kwargs)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
    consumer = AIOKafkaConsumer(enable_auto_commit=False, **client_kwargs)
    await consumer.start()
    out: list[bytes | None] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        for tp in tps:
            out += [value for _, value in await _drain(consumer, tp, ends[tp])]
    finally:
        await consumer.stop()
    return out
