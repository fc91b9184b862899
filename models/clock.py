"""Event-time clocks: per-partition watermarks and the backfill rule.

Clock: **event time** (``occurred_at``, epoch seconds) everywhere in this module.

The watermark rule, robust to a wrong clock: a partition's watermark is the ``support``-th
newest event time seen on it (default 3) minus the allowed lateness, and it never goes back. One
event dated years ahead (a client with a wrong clock that the ingest skew check did not catch)
cannot move it: it takes ``support`` events at least that new. With ordered input the
watermark trails the newest event by ``support - 1`` events, which on a live partition is well
under a second; a partition with fewer than ``support`` events has no watermark yet.
Replaying 90 days in minutes moves it exactly as living through them would.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(slots=True)
class PartitionClock:
    """Event-time progress of one partition of the user stream.

    Examples
    --------
    >>> c = PartitionClock()
    >>> [c.observe(t, lateness_s=10, support=2) for t in (100.0, 50.0, 120.0)], c.watermark
    ([False, True, True], 90.0)
    >>> c.observe(4e9, lateness_s=10, support=2), c.watermark  # one event from 2096: no move
    (True, 110.0)
    """

    max_event_time: float | None = None
    watermark: float | None = None
    next_due_bucket: int | None = None
    """First due-index bucket not yet fired on this partition."""
    newest: list[float] = field(default_factory=list)
    """The newest distinct event times seen, newest first (at most ``support`` of them)."""

    def observe(self, ts: float, *, lateness_s: float, support: int = 1) -> bool:
        """Account for one event; ``True`` when the watermark advanced."""
        newest = self.newest
        if not newest and self.max_event_time is not None:
            newest.append(self.max_event_time)  # a clock stored before ``newest`` existed
        if ts in newest or (len(newest) >= support and ts <= newest[-1]):
            return False
        at = next((i for i, t in enumerate(newest) if ts > t), len(newest))
        newest.insert(at, ts)
        del newest[support:]
        self.max_event_time = newest[0]
        if len(newest) < support:
            return False
        candidate = newest[-1] - lateness_s
        if self.watermark is None or candidate > self.watermark:
            self.watermark = candidate
            return True
        return False

    def to_dict(self) -> dict[str, float | int | list[float] | None]:
        return {
            "max_event_time": self.max_event_time,
            "watermark": self.watermark,
            "next_due_bucket": self.next_due_bucket,
            "newest": list(self.newest),
        }

    @classmethod
    def from_dict(cls, d: dict[str, float | int | list[float] | None]) -> PartitionClock:
        nb, mx, wm, newest = (
            d.get("next_due_bucket"),
            d.get("max_event_time"),
            d.get("watermark"),
            d.get("newest"),
        )
        assert not isinstance(nb, list) and not isinstance(mx, list) and not isinstance(wm, list)
        return cls(
            max_event_time=mx,
            watermark=wm,
            next_due_bucket=int(nb) if nb is not None else None,
            newest=[float(t) for t in newest] if isinstance(newest, list) else [],
        )


def is_backfill(ts: float, watermark: float | None, max_age_s: float) -> bool:
    """An event older than ``max_age_s`` behind the watermark updates state but triggers nothing.

    >>> is_backfill(0.0, 86_400 * 2, 86_400), is_backfill(0.0, None, 86_400)
    (True, False)
    """
    return watermark is not None and ts < watermark - max_age_s


def too_far_ahead(ts: float, record_ms: int, max_skew_s: float) -> bool:
    """``ts`` (event time) is more than ``max_skew_s`` after the record timestamp ``record_ms``
    (the producer's clock, milliseconds); ``record_ms <= 0`` means unknown (offline drivers).

    >>> too_far_ahead(1_000.0, 100_000, 600), too_far_ahead(650.0, 100_000, 600), too_far_ahead(1e9, 0, 1)
    (True, False, False)
    """
    return record_ms > 0 and ts > record_ms / 1000 + max_skew_s
