"""Profile values equal a batch recomputation from the same events, whatever the arrival order,
duplicates or merges: exact for counts and sums, within 1e-9 for decayed values.

The reference below is written independently of ``models.profile``: plain loops over the
distinct events, computing each value from its definition (decayed sums as sum of 2^-(age/h)).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from models.catalog import CatalogEntry
from models.facts import EventFacts
from models.profile import Applied, Profile, apply_event, merge_into

DAY = 86_400.0
HALF_LIVES = (DAY, 7 * DAY, 30 * DAY)
WEIGHT = {"view": 1.0, "click": 0.5, "share": 3.0, "purchase": 5.0}
CATALOG = {
    "c1": CatalogEntry("c1", 0.0, "python", ("course", "beginner")),
    "c2": CatalogEntry("c2", 19.0, "python", ("ebook",)),
    "c3": CatalogEntry("c3", 99.0, "finance", ("course",)),
    "c4": CatalogEntry("c4", 199.0, "history", ("audio",)),
    "c5": CatalogEntry("c5", 699.0, "finance", ("membership",)),
}
TIMEZONES = [None, "Asia/Shanghai", "America/New_York", "UTC"]


def band(price: float) -> str:
    if price == 0:
        return "free"
    return "low" if price < 30 else "mid" if price < 100 else "high" if price < 200 else "premium"


@st.composite
def event_lists(draw: st.DrawFn) -> list[EventFacts]:
    n = draw(st.integers(1, 40))
    out = []
    for i in range(n):
        etype = draw(st.sampled_from(["view", "click", "share", "purchase"]))
        out.append(
            EventFacts(
                event_id=f"e{i}",
                type=etype,
                channel=draw(st.sampled_from(["app", "web", "wechat", "sms"])),
                # five days span: inside the 7-day dedupe window, so arrival order must not matter
                ts=1_767_225_600.0 + draw(st.integers(0, 5 * 86_400)),
                item_id=draw(st.sampled_from([None, "c1", "c2", "c3", "c4", "c5", "unknown"])),
                spend=float(draw(st.integers(0, 500))) if etype == "purchase" else 0.0,
                progress=draw(st.sampled_from([0.0, 0.25, 0.5, 0.75, 1.0])) if etype == "view" else 0.0,
                timezone=draw(st.sampled_from(TIMEZONES)),
            )
        )
    return out


def reference(events: list[EventFacts]) -> dict[str, object]:
    """Every profile value from its definition, over distinct events."""
    distinct = list({(e.channel, e.event_id): e for e in events}.values())
    ref: dict[str, object] = {
        "events": len(distinct),
        "by_type": dict(Counter(e.type for e in distinct)),
        "by_channel": dict(Counter(e.channel for e in distinct)),
        "purchases": sum(1 for e in distinct if e.type == "purchase"),
        "spend": sum(e.spend for e in distinct if e.type == "purchase"),
        "first_seen": min(e.ts for e in distinct),
        "last_seen": max(e.ts for e in distinct),
        "progress_views": sum(1 for e in distinct if e.type == "view"),
        "progress_sum": sum(e.progress for e in distinct if e.type == "view"),
        "completed_views": sum(1 for e in distinct if e.type == "view" and e.progress >= 0.9),
    }
    purchases = [e.ts for e in distinct if e.type == "purchase"]
    ref["first_purchase"] = min(purchases) if purchases else None
    engaged = [
        e.ts for e in distinct if e.type in ("purchase", "share") or (e.type == "view" and e.progress >= 0.5)
    ]
    ref["engaged_at"] = min(engaged) if engaged else None
    hours = [0] * 24
    for e in distinct:
        local = datetime.fromtimestamp(e.ts, ZoneInfo(e.timezone)) if e.timezone else None
        hours[local.hour if local else int(e.ts // 3600) % 24] += 1
    ref["hours"] = hours
    ref["days"] = sorted({int(e.ts // DAY) for e in distinct})[-64:]
    viewed: Counter[str] = Counter()
    bought: Counter[str] = Counter()
    for e in distinct:
        item = CATALOG.get(e.item_id or "")
        if item and e.type == "view":
            viewed[band(item.price)] += 1
        elif item and e.type == "purchase":
            bought[band(item.price)] += 1
    ref["price_viewed"], ref["price_bought"] = dict(viewed), dict(bought)

    def decayed(group: list[tuple[float, float]], half_lives: tuple[float, ...]) -> list[float]:
        at = max(ts for ts, _ in group)
        return [at] + [sum(w * 2 ** (-(at - ts) / h) for ts, w in group) for h in half_lives]

    groups: dict[str, list[tuple[float, float]]] = {}
    for e in distinct:
        for key in ("all", f"t:{e.type}", f"c:{e.channel}"):
            groups.setdefault(key, []).append((e.ts, 1.0))
        if e.type == "view":  # decayed view progress (recent completion)
            groups.setdefault("progress", []).append((e.ts, e.progress))
    ref["decayed"] = {k: decayed(g, HALF_LIVES) for k, g in groups.items()}

    def weight(e: EventFacts) -> float:
        return WEIGHT[e.type] + (e.progress if e.type == "view" else 0.0)

    engagement: dict[str, list[tuple[float, float]]] = {}
    affinity: dict[str, list[tuple[float, float]]] = {}
    for e in distinct:
        engagement.setdefault(e.channel, []).append((e.ts, weight(e)))
        item = CATALOG.get(e.item_id or "")
        if item:
            for key in [f"tag:{t}" for t in item.tags] + [f"cat:{item.category}"]:
                affinity.setdefault(key, []).append((e.ts, weight(e)))
    ref["engagement"] = {k: decayed(g, (30 * DAY,)) for k, g in engagement.items()}
    ref["affinity"] = {k: decayed(g, (30 * DAY,)) for k, g in affinity.items()}
    return ref


def assert_matches(p: Profile, ref: dict[str, object]) -> None:
    for name in (
        "events", "by_type", "by_channel", "purchases", "spend", "first_seen", "last_seen",
        "first_purchase", "engaged_at", "progress_views", "progress_sum", "completed_views",
        "hours", "days", "price_viewed", "price_bought",
    ):  # fmt: skip
        assert getattr(p, name) == ref[name], name
    for name in ("decayed", "engagement", "affinity"):
        got, want = getattr(p, name), ref[name]
        assert isinstance(want, dict) and set(got) == set(want), name
        for key, values in want.items():
            assert got[key][0] == values[0], (name, key, "at")
            for a, b in zip(got[key][1:], values[1:], strict=True):
                assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (name, key, a, b)


@settings(max_examples=150, deadline=None)
@given(events=event_lists(), seed=st.integers(0, 2**32 - 1))
def test_any_arrival_order_with_duplicates_equals_the_batch_reference(
    events: list[EventFacts], seed: int
) -> None:
    rng = random.Random(seed)
    stream = events + rng.sample(events, rng.randint(0, len(events)))  # redeliveries
    rng.shuffle(stream)
    p = Profile("u:1")
    outcomes = [apply_event(p, e, catalog=CATALOG) for e in stream]
    assert outcomes.count(Applied.applied) == len(events)
    assert outcomes.count(Applied.duplicate) == len(stream) - len(events)
    assert_matches(p, reference(events))


@settings(max_examples=100, deadline=None)
@given(events=event_lists(), seed=st.integers(0, 2**32 - 1))
def test_a_merge_of_two_profiles_equals_the_batch_of_all_their_events(
    events: list[EventFacts], seed: int
) -> None:
    rng = random.Random(seed)
    anon, user = Profile("a:d1"), Profile("u:1")
    for e in events:
        apply_event(anon if rng.random() < 0.5 else user, e, catalog=CATALOG)
    assert merge_into(user, anon)
    assert_matches(user, reference(events))


def test_an_event_older_than_the_dedupe_window_is_late_and_not_applied() -> None:
    p = Profile("u:1")
    new = EventFacts(event_id="e1", type="view", channel="app", ts=30 * DAY)
    old = EventFacts(event_id="e0", type="view", channel="app", ts=30 * DAY - 8 * DAY)
    within = EventFacts(event_id="e2", type="view", channel="app", ts=30 * DAY - 6 * DAY)
    for i in range(3):  # move the user's floor: pruning happens as newer events arrive
        apply_event(p, EventFacts(event_id=f"x{i}", type="click", channel="app", ts=30 * DAY + i * 3600.0))
    assert apply_event(p, new) is Applied.applied
    assert apply_event(p, old) is Applied.late
    assert apply_event(p, within) is Applied.applied
    assert p.events == 5


def test_preferred_channel_follows_engagement_not_volume() -> None:
    p = Profile("u:1")
    for i in range(5):  # five clicks on sms
        apply_event(p, EventFacts(event_id=f"c{i}", type="click", channel="sms", ts=float(i)))
    apply_event(p, EventFacts(event_id="b", type="purchase", channel="wechat", ts=10.0, spend=9.0))
    assert p.by_channel["sms"] > p.by_channel["wechat"]
    assert p.preferred_channel == "wechat"
