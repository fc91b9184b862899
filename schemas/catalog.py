"""Item catalog record (compacted ``catalog.items`` topic, keyed by ``item_id``), version 1."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Identifier


class ItemKind(StrEnum):
    """What is sold."""

    course = "course"
    ebook = "ebook"
    audio_column = "audio_column"
    membership = "membership"


class CatalogItem(BaseModel):
    """One sellable item. A tombstone (null value) on the topic removes it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    item_id: Identifier
    kind: ItemKind
    title: str = Field(min_length=1, max_length=256)
    category: str = Field(min_length=1, max_length=64)
    tags: list[str] = Field(default_factory=list, max_length=32)
    price: float = Field(ge=0, le=1_000_000, description="List price in the base currency.")
    series_id: str | None = Field(default=None, max_length=128, description="Series the item belongs to.")
    series_part: int | None = Field(default=None, ge=1, le=1000, description="Position in its series.")
    updated_at: AwareDatetime | None = None
