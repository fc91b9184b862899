"""Profiles: exact-once application, bounds, merges; checked against a batch recomputation
written independently of the incremental code (plain loops over the distinct events)."""

from __future__ import annotations

import random

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from models.facts import EventFacts
from models.profile import MAX_ITEMS, Applied, Profile, apply_event, merge_into

DAY = 86_400.0
T0 = 1_767_225_600.0  # 2026-01-01


def batch_reference(events: list[EventFacts]) -> dict[str, object]:
    distinct: dict[tuple[str, str], EventFacts] = {}
    for e in events:
        distinct.setdefault((e.channel, e.event_id), e)
    ev = list(distinct.values())
    by_type: dict[str, int] = {}
    by_channel: dict[str, int] = {}
    items: dict[str, tuple[int, float]] = {}  # views, and the last view or purchase
    spend = 0.0
    for e in ev:
        by_type[e.type] = by_type.get(e.type, 0) + 1
        by_channel[e.channel] = by_channel.get(e.channel, 0) + 1
        if e.type == "purchase":
            spend += e.spend
        if e.type in ("view", "purchase") and e.item_id:
            count, last = items.get(e.item_id, (0, e.ts))
            items[e.item_id] = (count + (e.type == "view"), max(last, e.ts))
    purchases = [e for e in ev if e.type == "purchase"]
    return {
        "events": len(ev),
        "by_type": by_type,
        "by_channel": by_channel,
        "spend": spend,
        "purchases": len(purchases),
        "first_seen": min((e.ts for e in ev), default=None),
        "last_seen": max((e.ts for e in ev), default=None),
        "first_purchase": min((e.ts for e in purchases), default=None),
        "bought": {e.item_id for e in purchases},
        "dismissed": {e.item_id for e in ev if e.type == "click" and e.dismiss},
        "items": items,
    }


def observed(p: Profile) -> dict[str, object]:
    return {
        "events": p.events,
        "by_type": p.by_type,
        "by_channel": p.by_channel,
        "spend": p.spend,
        "purchases": p.purchases,
        "first_seen": p.first_seen,
        "last_seen": p.last_seen,
        "first_purchase": p.first_purchase,
        "bought": set(p.bought),
        "dismissed": set(p.dismissed),
        "items": {i: (int(c), t) for i, (c, t) in p.item_views.items()},
    }


def assert_matches(p: Profile, ref: dict[str, object]) -> None:
    got = observed(p)
    assert abs(got.pop("spend") - ref["spend"]) < 1e-6  # type: ignore[operator]
    ref = {k: v for k, v in ref.items() if k != "spend"}
    assert got == ref


event_strategy = st.builds(
    lambda i, typ, ch, off, item, amount, dismiss: EventFacts(
        event_id=f"e{i}",
        type=typ,
        channel=ch,
        ts=T0 + off,
        item_id=item,
        spend=amount if typ == "purchase" else 0.0,
        dismiss=dismiss and typ == "click",
    ),
    st.integers(0, 400),
    st.sampled_from(["click", "view", "share", "purchase"]),
    st.sampled_from(["app", "web", "wechat"]),
    st.floats(0, 3 * DAY, allow_nan=False),
    st.sampled_from([f"c{i}" for i in range(20)]),
    st.floats(0, 500, allow_nan=False),
    st.booleans(),
)


@st.composite
def streams(draw: st.DrawFn) -> list[EventFacts]:
    """Distinct events (one fact per key), with duplicates and any order within 3 days."""
    events = draw(
        st.lists(event_strategy, min_size=1, max_size=120, unique_by=lambda e: (e.channel, e.event_id))
    )
    dupes = draw(st.lists(st.sampled_from(events), max_size=40))
    stream = events + dupes
    draw(st.randoms(use_true_random=False)).shuffle(stream)
    return stream


@settings(max_examples=300, deadline=None)
@given(streams())
def test_profile_equals_batch_recomputation(stream: list[EventFacts]) -> None:
    p = Profile("u:1")
    outcomes = [apply_event(p, e, dedupe_window_s=7 * DAY) for e in stream]
    assert Applied.late not in outcomes  # disorder (3 days) is within the window (7 days)
    assert_matches(p, batch_reference(stream))


@settings(max_examples=200, deadline=None)
@given(streams(), st.integers(1, 30))
def test_never_double_counts_even_with_a_tiny_dedupe_record(stream: list[EventFacts], max_keys: int) -> None:
    p = Profile("u:1")
    applied: set[tuple[str, str]] = set()
    for e in stream:
        if apply_event(p, e, dedupe_window_s=7 * DAY, max_event_keys=max_keys) is Applied.applied:
            assert (e.channel, e.event_id) not in applied
            applied.add((e.channel, e.event_id))
        assert len(p.seen) <= max_keys
    assert p.events == len(applied)


@settings(max_examples=200, deadline=None)
@given(streams(), st.randoms(use_true_random=False))
def test_merge_of_split_history_equals_batch(stream: list[EventFacts], rnd: random.Random) -> None:
    anon, user = Profile("a:d1"), Profile("u:1")
    route = {}
    for e in stream:  # each distinct event is routed to one side, always the same one
        side = route.setdefault((e.channel, e.event_id), rnd.choice([anon, user]))
        apply_event(side, e)
    assert merge_into(user, anon)
    assert not merge_into(user, anon)  # a redelivered merge changes nothing
    assert_matches(user, batch_reference(stream))
    for e in stream:  # the merged dedupe record still recognises the anonymous events
        assert apply_event(user, e) is Applied.duplicate


def test_event_older_than_the_window_is_late_and_not_applied() -> None:
    p = Profile("u:1")
    assert (
        apply_event(
            p,
            EventFacts(event_id="new", type="click", channel="app", ts=T0 + 10 * DAY),
            dedupe_window_s=7 * DAY,
        )
        is Applied.applied
    )
    old = EventFacts(event_id="old", type="click", channel="app", ts=T0)
    assert apply_event(p, old, dedupe_window_s=7 * DAY) is Applied.late
    assert p.events == 1


def test_item_views_are_bounded_by_recency() -> None:
    p = Profile("u:1")
    for i in range(MAX_ITEMS + 10):
        apply_event(p, EventFacts(event_id=f"v{i}", type="view", channel="app", ts=T0 + i, item_id=f"c{i}"))
    assert len(p.item_views) == MAX_ITEMS
    assert "c0" not in p.item_views and f"c{MAX_ITEMS + 9}" in p.item_views


def test_dismissed_items_are_kept_bounded_excluded_and_add_no_taste() -> None:
    from models.catalog import CatalogEntry
    from models.profile import MAX_DISMISSED

    catalog = {"c0": CatalogEntry("c0", category="maths")}
    p = Profile("u:1")
    apply_event(p, EventFacts(event_id="b", type="purchase", channel="app", ts=T0, item_id="paid"))
    for i in range(MAX_DISMISSED + 5):
        click = EventFacts(
            event_id=f"d{i}", type="click", channel="app", ts=T0 + i, item_id=f"c{i}", dismiss=True
        )
        apply_event(p, click, catalog=catalog)
    assert len(p.dismissed) == MAX_DISMISSED and p.dismissed[-1] == f"c{MAX_DISMISSED + 4}"
    assert "c0" not in p.dismissed  # the oldest dismissal went first
    assert p.excluded == {"paid", *p.dismissed}
    assert p.affinity["cat:maths"][1] == 0.0  # 'not interested' in a maths course adds no maths taste
    assert Profile.loads(p.dumps()) == p


def test_roundtrip_serialisation() -> None:
    p = Profile("u:1")
    apply_event(p, EventFacts(event_id="e", type="purchase", channel="app", ts=T0, item_id="c", spend=9.9))
    assert Profile.loads(p.dumps()) == p
    assert "seen" not in p.public_view()
    public = Profile.from_public(orjson.loads(p.public_json()))  # what a reader of the mirror rebuilds
    assert public.public_view() == p.public_view() and public.seen == {}


def test_forwarded_event_waits_for_its_merge_and_is_counted_once() -> None:
    """A crash can re-send the merge after an anonymous event was already forwarded: the event
    is parked until the merge, then recognised as already counted in the anonymous history."""
    from models.profile import needs_merge_first, park, take_parked

    anon, user = Profile("a:d1"), Profile("u:1")
    e = EventFacts(event_id="e1", type="view", channel="web", ts=T0, item_id="c1")
    apply_event(anon, e)  # applied before the link
    assert needs_merge_first(user, "a:d1")
    assert park(user, "a:d1", e.to_dict())  # its redelivery, forwarded, arrives first
    assert user.events == 0
    assert merge_into(user, anon)
    assert not needs_merge_first(user, "a:d1")
    replay = [apply_event(user, f) for f in take_parked(user, "a:d1")]
    assert replay == [Applied.duplicate] and user.events == 1 and user.parked == {}


@settings(max_examples=200, deadline=None)
@given(
    changes=st.lists(st.tuples(st.booleans(), st.integers(0, 5).map(float)), min_size=1, max_size=8),
    rnd=st.randoms(use_true_random=False),
)
def test_consent_is_the_newest_change_whatever_the_arrival_order(
    changes: list[tuple[bool, float]], rnd: random.Random
) -> None:
    from models.profile import apply_consent

    newest = max(at for _, at in changes)
    expected = all(granted for granted, at in changes if at == newest)  # a revocation wins a tie
    shuffled = list(changes)
    rnd.shuffle(shuffled)
    p, split = Profile("u:1"), Profile("u:1")
    for granted, at in shuffled:
        apply_consent(p, "sms", granted, at)
    half = len(shuffled) // 2
    anon = Profile("a:1")
    for granted, at in shuffled[:half]:
        apply_consent(anon, "sms", granted, at)
    for granted, at in shuffled[half:]:
        apply_consent(split, "sms", granted, at)
    merge_into(split, anon)  # half the history arrives through a merge
    assert p.consented == split.consented == {"sms": expected}
