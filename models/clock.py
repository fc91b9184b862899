"""Event-time clocks: per-partition watermarks and the backfill rule.

Clock: **event time** (``occurred_at``, epoch seconds) everywhere in this module. A partition's
watermark is the newest event time seen on it minus the allowed lateness; it never goes back.
Replaying 90 days in minutes moves it exactly as living through them would.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class PartitionClock:
    """Event-time progress of one partition of the user stream.

    Examples
    --------
    >>> c = PartitionClock()
    >>> c.observe(100.0, lateness_s=10), c.observe(50.0, lateness_s=10), c.watermark
    (True, False, 90.0)
    """

    max_event_time: float | None = None
    watermark: float | None = None
    next_due_bucket: int | None = None
    """First due-index bucket not yet fired on this partition."""

    def observe(self, ts: float, *, lateness_s: float) -> bool:
        """Account for one event; ``True`` when the watermark advanced."""
        if self.max_event_time is not None and ts <= self.max_event_time:
            return False
        self.max_event_time = ts
        candidate = ts - lateness_s
        if self.watermark is None or candidate > self.watermark:
            self.watermark = candidate
            return True
        return False

    def to_dict(self) -> dict[str, float | int | None]:
        return {
            "max_event_time": self.max_event_time,
            "watermark": self.watermark,
            "next_due_bucket": self.next_due_bucket,
        }

    @classmethod
    def from_dict(cls, d: dict[str, float | int | None]) -> PartitionClock:
        nb = d.get("next_due_bucket")
        return cls(
            max_event_time=d.get("max_event_time"),
            watermark=d.get("watermark"),
            next_due_bucket=int(nb) if nb is not None else None,
        )


def is_backfill(ts: float, watermark: float | None, max_age_s: float) -> bool:
    """An event older than ``max_age_s`` behind the watermark updates state but triggers nothing.

    >>> is_backfill(0.0, 86_400 * 2, 86_400), is_backfill(0.0, None, 86_400)
    (True, False)
    """
    return watermark is not None and ts < watermark - max_age_s
