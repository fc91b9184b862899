"""Every worker's in-memory copy of the compacted catalog topic.

Follows all partitions of ``catalog.items`` from the beginning (:mod:`app.compacted`);
tombstones remove items. Invalid records are logged and skipped
(the catalog service owns them; they never reach the event DLQ).
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from app.compacted import follow
from models.catalog import CatalogEntry
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
        self.items[item.item_id] = CatalogEntry.from_item(item)

    async def run(self) -> None:
        await follow(self.topic, self.client_kwargs, lambda k, v, _: self.apply(k, v))
