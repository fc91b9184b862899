"""What the models know about an item: the catalog entry, reduced to plain values.

Fed by ``catalog.items`` (``app.catalog``) in the worker and by the log's catalog records in
``nba evaluate``; models look items up by id and treat an unknown item as having no attributes.
"""

from __future__ import annotations

from dataclasses import dataclass

from schemas.catalog import CatalogItem

PRICE_BANDS: tuple[tuple[str, float], ...] = (
    ("free", 0.0),
    ("low", 30.0),
    ("mid", 100.0),
    ("high", 200.0),
)
"""(band, upper bound exclusive, except ``free`` which is price 0); above the last: ``premium``."""


@dataclass(frozen=True, slots=True)
class CatalogEntry:
    title: str
    price: float = 0.0
    category: str | None = None
    tags: tuple[str, ...] = ()
    series_id: str | None = None
    series_part: int | None = None

    @classmethod
    def from_item(cls, item: CatalogItem) -> CatalogEntry:
        return cls(
            title=item.title,
            price=item.price,
            category=item.category,
            tags=tuple(item.tags),
            series_id=item.series_id,
            series_part=item.series_part,
        )

    @property
    def price_band(self) -> str:
        """The item's price band.

        >>> [CatalogEntry("x", p).price_band for p in (0, 19, 49, 199, 299)]
        ['free', 'low', 'mid', 'high', 'premium']
        """
        if self.price <= 0:
            return "free"
        for band, upper in PRICE_BANDS[1:]:
            if self.price < upper:
                return band
        return "premium"
