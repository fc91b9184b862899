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


@given(
    st.lists(st.floats(0, 1e6, allow_nan=False), min_size=3, max_size=50),
    st.floats(1e8, 1e10, allow_nan=False),
    st.integers(0, 49),
)
def test_one_outlier_never_moves_a_watermark_that_needs_three_events(
    times: list[float], outlier: float, at: int
) -> None:
    # issue 18, finding 3: the watermark follows the third-newest distinct event time
    c = PartitionClock()
    stream = [*times[:at], outlier, *times[at:]]
    for t in stream:
        c.observe(t, lateness_s=60, support=3)
    distinct = sorted(set(times), reverse=True)
    if len(distinct) >= 2:
        assert c.watermark is not None and c.watermark <= distinct[1] - 60
    assert PartitionClock.from_dict(c.to_dict()) == c


def test_a_clock_stored_before_the_support_rule_reads_and_never_goes_back() -> None:
    c = PartitionClock.from_dict({"max_event_time": 500.0, "watermark": 440.0, "next_due_bucket": 3})
    moved = [c.observe(t, lateness_s=60, support=3) for t in (300.0, 600.0, 700.0, 800.0)]
    assert moved == [False, False, False, True] and c.watermark == 600.0 - 60
