"""Identity resolution, event-time clocks and the due-time index."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from models.clock import PartitionClock, is_backfill
from models.due import DueIndex
from models.identity import LinkOutcome, external_id, resolve


def test_first_link_wins_and_conflicts_are_flagged() -> None:
    assert resolve("u1", "d1", None) == resolve("u1", "d1", None)
    assert resolve("u1", "d1", None).outcome is LinkOutcome.new
    assert resolve("u1", "d1", "u1").outcome is LinkOutcome.known
    conflict = resolve("u2", "d1", "u1")
    assert conflict.outcome is LinkOutcome.conflict and conflict.canonical == "u:u2"


def test_anonymous_only_events_always_route_to_the_anonymous_key() -> None:
    # whatever the link state, so a redelivery reaches the same profile and dedupe record
    assert resolve(None, "d1", None).canonical == resolve(None, "d1", "u1").canonical == "a:d1"
    assert resolve("u1", None, None).canonical == "u:u1"
    assert external_id("a:d1") == ("anonymous", "d1") and external_id("u:u1") == ("user", "u1")


@given(st.lists(st.floats(0, 1e6, allow_nan=False), min_size=1, max_size=50))
def test_watermark_is_monotone_and_trails_the_newest_event(times: list[float]) -> None:
    c = PartitionClock()
    previous = None
    for t in times:
        c.observe(t, lateness_s=60)
        assert c.watermark is not None
        assert previous is None or c.watermark >= previous
        previous = c.watermark
    assert c.watermark == max(times) - 60
    assert PartitionClock.from_dict(c.to_dict()) == c


def test_backfill_rule() -> None:
    assert is_backfill(0.0, watermark=100.0, max_age_s=50.0)
    assert not is_backfill(60.0, watermark=100.0, max_age_s=50.0)
    assert not is_backfill(0.0, watermark=None, max_age_s=0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["u:1", "u:2", "u:3"]), st.floats(1000, 50_000, allow_nan=False)),
        max_size=30,
    ),
    st.lists(st.floats(1000, 60_000, allow_nan=False), min_size=1, max_size=10),
)
def test_due_index_fires_each_entry_once_after_its_time(
    entries: list[tuple[str, float]], marks: list[float]
) -> None:
    store: dict[str, list[str]] = {}
    idx = DueIndex(store, partition=3, bucket_s=600)
    clock_next: int | None = None
    first = min(marks)
    # entries are scheduled after the partition's first watermark, as the worker does
    scheduled = [(m, t + first) for m, t in entries]
    fired: list[str] = []
    _, clock_next = idx.pop_due(first, clock_next)
    for m, t in scheduled:
        idx.schedule(m, t)
    watermark = first
    for w in [*sorted(marks), 10**6]:
        watermark = max(watermark, w)
        due, clock_next = idx.pop_due(watermark, clock_next)
        fired.extend(due)
    expected = {(m, int(t // 600)) for m, t in scheduled}
    assert sorted(fired) == sorted(m for m, _ in expected)
    assert store == {}
