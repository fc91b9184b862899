"""Lifecycle stages: the engagement ladder, silence relative to the user's own rhythm, and
transitions recorded once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from models.facts import EventFacts
from models.lifecycle import DAY, LifecyclePolicy, Stage, rhythm_days, stage_at, update
from models.profile import Profile, apply_event

POLICY = LifecyclePolicy()


def feed(p: Profile, *events: tuple[str, float, float]) -> None:
    for i, (etype, day, progress) in enumerate(events, start=p.events):
        apply_event(
            p,
            EventFacts(
                event_id=f"e{i}",
                type=etype,
                channel="app",
                ts=day * DAY,
                progress=progress,
                spend=10.0 if etype == "purchase" else 0.0,
            ),
        )


def stage(p: Profile) -> str:
    assert p.last_seen is not None
    return stage_at(p, p.last_seen, POLICY)[0].value


def test_the_engagement_ladder() -> None:
    p = Profile("u:1")
    feed(p, ("view", 0, 0.1))
    assert stage(p) == "acquisition"
    feed(p, ("view", 0, 0.6))  # a view at least half watched
    assert stage(p) == "activation"
    feed(p, ("click", 1, 0), ("click", 2, 0))
    assert stage(p) == "retention"  # three active days
    feed(p, ("purchase", 3, 0), ("purchase", 4, 0))
    assert stage(p) == "expansion"
    feed(p, ("purchase", 5, 0), ("share", 5, 0))
    assert stage(p) == "loyalty"


def test_loyalty_needs_sustained_activity() -> None:
    p = Profile("u:1")
    feed(p, ("purchase", 0, 0), ("purchase", 0, 0), ("purchase", 0, 0), ("share", 0, 0))
    assert stage(p) == "expansion"  # one active day is not sustained


def test_five_events_activate_without_a_meaningful_one() -> None:
    p = Profile("u:1")
    feed(p, *[("click", 0, 0)] * 4)
    assert stage(p) == "acquisition"
    feed(p, ("click", 0, 0))
    assert stage(p) == "activation"


def test_silence_is_relative_to_the_users_rhythm() -> None:
    daily, weekly = Profile("u:d"), Profile("u:w")
    feed(daily, *[("view", d, 0.6) for d in range(10)])
    feed(weekly, *[("view", 7 * w, 0.6) for w in range(5)])
    assert rhythm_days(daily, POLICY) == 1.0 and rhythm_days(weekly, POLICY) == 7.0
    # four quiet days: at risk for the daily learner (2 x 1 day, floored at 3), not the weekly one
    assert stage_at(daily, (9 + 4) * DAY, POLICY)[0] is Stage.at_risk
    assert stage_at(weekly, (28 + 4) * DAY, POLICY)[0] is Stage.retention
    # dormant: 3 x rhythm clamped to [7, 14] days
    assert stage_at(daily, (9 + 7) * DAY, POLICY)[0] is Stage.dormant
    assert stage_at(weekly, (28 + 13) * DAY, POLICY)[0] is Stage.at_risk
    assert stage_at(weekly, (28 + 14) * DAY, POLICY)[0] is Stage.dormant


def test_update_records_a_transition_once_with_its_time_and_reason() -> None:
    p = Profile("u:1")
    feed(p, ("purchase", 0, 0))
    first = update(p, 0.0, POLICY)
    assert first is not None and (first.from_stage, first.to_stage) == ("acquisition", "activation")
    assert first.reason == "first purchase" and update(p, 0.0, POLICY) is None
    late = update(p, 20 * DAY, POLICY)
    assert late is not None and late.to_stage == "dormant" and late.at == 20 * DAY
    assert p.stage == "dormant" and p.stage_since == 20 * DAY


@given(st.lists(st.integers(0, 60), min_size=1, max_size=30), st.integers(0, 40))
def test_silence_only_ever_moves_a_user_down(days: list[int], quiet: int) -> None:
    p = Profile("u:1")
    feed(p, *[("view", d, 0.6) for d in days])
    assert p.last_seen is not None
    order = ["engaged", "at_risk", "dormant"]

    def rank(t: float) -> int:
        s = stage_at(p, t, POLICY)[0].value
        return order.index(s if s in ("at_risk", "dormant") else "engaged")

    ranks = [rank(p.last_seen + q * DAY) for q in range(quiet + 1)]
    assert ranks == sorted(ranks)
