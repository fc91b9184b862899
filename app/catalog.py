"""Every worker's in-memory copy of the compacted catalog topic.

A plain aiokafka consumer with no group reads all partitions of ``catalog.items`` from the
beginning and then follows it; tombstones remove items. Invalid records are logged and skipped
(the catalog service owns them; they never reach the event DLQ).
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import ValidationError

from models.decision import CatalogEntry
from schemas.catalog import CatalogItem

log = logging.getLogger(__name__)


class CatalogCache:
    def __init__(self, topic: str, client_kwargs: dict[str, Any]) -> None:
        self.topic = topic
        self.client_kwargs = client_kwargs
        self.items: dict[str, CatalogEntry] = {}

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:
            if key is not None:
                self.items.pop(key.decode(), None)
            return
        try:
            item = CatalogItem.model_validate_json(value)
        except ValidationError as exc:
            log.warning("skipping invalid catalog record: %s", exc.errors(include_url=False)[:2])
            return
        self.items[item.item_id] = CatalogEntry(title=item.title, price=item.price, category=item.category)

    async def run(self) -> None:
        consumer = AIOKafkaConsumer(
            enable_auto_commit=False, auto_offset_reset="earliest", **self.client_kwargs
        )
        await consumer.start()
        try:
            partitions = consumer.partitions_for_topic(self.topic) or {0}
            consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
            await consumer.seek_to_beginning()
            async for record in consumer:
                self.apply(record.key, record.value)
        finally:
            await consumer.stop()
