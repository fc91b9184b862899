"""Where and when to reach a user: the per-user channel posterior and the learned send time."""

from __future__ import annotations

import pickle
import random
from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from app.action_catalog import load_file
from models import attribution
from models.arbitration import LearnedPolicy
from models.contact import ContactRules, in_quiet_hours
from models.decision import DecisionContext, Verdict
from models.due import DueIndex
from models.facts import EventFacts
from models.profile import Profile, merge_into
from models.reach import (
    best_send_time,
    channel_factor,
    note_answered,
    note_sent,
    slots_by_zone,
    slots_with_hours,
)
from models.recommend import Recommendation
from models.uplift import UpliftModel
from models.user_step import StepConfig, on_event, on_feedback
from schemas.action_catalog import ChannelLearning, Timing
from tests.unit.policy_fixtures import DAY, NOON, viewer

HOUR = 3_600.0
CATALOG = load_file()
RULES = ContactRules(quiet_start_hour=21, quiet_end_hour=8)


def _decide(profile: Profile, model: UpliftModel | None, now: float = NOON) -> Verdict:
    catalog = CATALOG.model_copy(update={"exploration": 0.0})
    ctx = DecisionContext(
        profile=profile,
        now=now,
        rng=random.Random(0),
        trigger=EventFacts(event_id="e9", type="view", channel="app", ts=now, item_id="c1"),
        rules=RULES,
        recommendations=lambda: [Recommendation("c7", 0.9, "viewed together with c1")],
    )
    verdict, _ = LearnedPolicy(catalog, model).decide(ctx)
    return verdict


def _model_with_answers(rates: dict[str, float], n: int = 400) -> UpliftModel:
    """An uplift model whose outcomes say each channel is answered at ``rates`` (and converts alike)."""
    model, rng = UpliftModel(), random.Random(1)
    for channel, rate in rates.items():
        for _ in range(n):
            x = {"item_views": 3.0, "action": "abandoned_view_reminder", "channel": channel}
            model.learn_one({**x, "answered": float(rng.random() < rate)}, rng.random() < 0.1)
    return model


def test_a_user_who_reads_one_channel_is_sent_there_and_told_why() -> None:
    model = _model_with_answers({"app": 0.3, "wechat": 0.3, "sms": 0.3})
    plain = _decide(viewer(), model).decision
    assert plain is not None and plain.channel == "app"  # the most engaged channel, all else equal
    reader = viewer(responses={"sms": [12, 11], "app": [12, 0]})
    d = _decide(reader, model).decision
    assert d is not None and d.channel == "sms"
    assert "opened or clicked 11 of 12 messages on sms" in d.reasons


def test_the_channel_posterior_leans_on_the_segment_then_on_the_user() -> None:
    cfg = ChannelLearning(prior_weight=10)
    fresh, keen = Profile("u:1"), Profile("u:2", responses={"wechat": [40, 36]})
    assert channel_factor(fresh, "wechat", 0.3, 0.3, cfg) == 1.0  # no data: everyone's rate
    assert channel_factor(fresh, "wechat", 0.45, 0.3, cfg) == 1.5  # the segment's
    assert 2.6 < channel_factor(keen, "wechat", 0.45, 0.3, cfg) < 3.0  # mostly the user's own 0.9
    assert channel_factor(keen, "wechat", 0.45, 0.3, ChannelLearning(enabled=False)) == 1.0


def test_segment_answer_rates_are_learned_from_outcomes_and_shrunk_to_all_users() -> None:
    model, rng = UpliftModel(answer_weight=20), random.Random(2)
    for segment, rate in ((0, 0.8), (1, 0.1)):
        for _ in range(500):
            x = {"action": "recommend_item", "channel": "email", "segment": float(segment)}
            model.learn_one({**x, "answered": float(rng.random() < rate)}, False)
    assert abs(model.answer_rate("email") - 0.45) < 0.05
    assert abs(model.answer_rate("email", 0) - 0.8) < 0.06
    assert abs(model.answer_rate("email", 1) - 0.1) < 0.06
    assert model.answer_rate("sms", 0) == model.answer_base  # nothing learned there


def test_an_answer_is_counted_once_and_labels_the_decisions_outcome() -> None:
    p, due = viewer(item_views={}), DueIndex({}, partition=0)
    cfg = StepConfig(actions=CATALOG.model_copy(update={"exploration": 0.0}), contact=RULES)
    sent = None
    for i in range(3):
        facts = EventFacts(event_id=f"e{i}", type="view", channel="app", ts=NOON + i, item_id="c1")
        step = on_event(p, facts, watermark=None, due=due, cfg=cfg)
        sent = step.decision or sent
    assert sent is not None
    assert p.responses == {sent.channel: [1, 0]}
    for _ in range(2):  # a redelivered open counts once
        on_feedback(p, "opened", sent.action_id, sent.channel, NOON + 2 * HOUR)
    assert p.responses == {sent.channel: [1, 1]}
    assert p.answer_hours[14] == 1
    (outcome,) = attribution.on_time(p, NOON + 30 * DAY)
    assert outcome.x["answered"] == 1.0 and outcome.group == "treatment"


def test_merging_profiles_adds_their_answers() -> None:
    anon, user = Profile("a:1"), Profile("u:1")
    note_sent(anon, "sms")
    note_answered(anon, "sms", NOON)
    note_sent(user, "sms")
    assert merge_into(user, anon)
    assert user.responses == {"sms": [2, 1]} and sum(user.answer_hours) == 1


def _evening_person(**kw: object) -> Profile:
    hours = [0] * 24
    hours[19] = 30  # events at 19:00-20:00 local
    return viewer(hours=hours, **kw)


def test_a_message_decided_in_the_morning_waits_for_the_users_evening() -> None:
    morning = NOON - 2 * HOUR  # 10:00 UTC
    d = _decide(_evening_person(), UpliftModel(), now=morning).decision
    assert d is not None and d.send_at == 10 * DAY + 19.5 * HOUR
    assert any("most active time of day" in r for r in d.reasons)
    evening = _decide(_evening_person(), UpliftModel(), now=10 * DAY + 19 * HOUR + 60).decision
    assert evening is not None and evening.send_at == evening.created_at  # already the best hour
    few = _decide(viewer(), UpliftModel(), now=morning).decision
    assert few is not None and few.send_at == morning  # too few events to know their hours
    off = CATALOG.model_copy(update={"timing": Timing(enabled=False)})
    assert best_send_time(_evening_person(), morning, RULES, off.timing) == (morning, False)


def test_a_night_owl_is_sent_at_the_last_hour_before_quiet_hours() -> None:
    hours = [0] * 24
    hours[23] = hours[22] = 20  # most active inside the quiet hours (21:00-08:00)
    at, moved = best_send_time(
        viewer(hours=hours, timezone="Asia/Shanghai"), NOON - 8 * HOUR, RULES, Timing()
    )
    local = datetime.fromtimestamp(at, ZoneInfo("Asia/Shanghai"))
    assert moved and (local.hour, local.minute) == (20, 30)


@settings(max_examples=300, deadline=None)
@given(
    hours=st.lists(st.integers(0, 50), min_size=24, max_size=24),
    answers=st.lists(st.integers(0, 5), min_size=24, max_size=24),
    now=st.floats(0, 30 * DAY),
    tz=st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Asia/Kolkata", None]),
    max_delay=st.floats(0, 48),
)
def test_the_send_time_is_never_early_late_or_in_quiet_hours(
    hours: list[int], answers: list[int], now: float, tz: str | None, max_delay: float
) -> None:
    p = Profile("u:1", hours=hours, answer_hours=answers, timezone=tz)
    cfg = Timing(max_delay_hours=max_delay)
    at, moved = best_send_time(p, now, RULES, cfg)
    assert at >= now and not in_quiet_hours(RULES, at, tz)
    assert at <= now + max(max_delay * HOUR, 13 * HOUR)  # quiet hours last 11 hours; at most
    if moved:
        assert at <= now + max_delay * HOUR


SPRING_2026 = datetime(2026, 3, 1, tzinfo=ZoneInfo("UTC")).timestamp()


@settings(max_examples=400, deadline=None)
@given(
    # event times in milliseconds (below a microsecond the zone rounds, the arithmetic does not),
    # over both of 2026's clock changes
    now=st.integers(int(SPRING_2026 * 1000), int((SPRING_2026 + 270 * DAY) * 1000)).map(lambda ms: ms / 1000),
    tz=st.sampled_from(
        [
            "UTC",
            "Asia/Shanghai",
            "America/New_York",
            "Europe/London",
            "Australia/Lord_Howe",
            "Asia/Kathmandu",
            "Not/AZone",
            None,
        ]
    ),
    default=st.sampled_from(["Asia/Shanghai", "America/New_York"]),
    quiet=st.tuples(st.integers(0, 23), st.integers(0, 23)),
    max_delay=st.floats(0, 48),
)
def test_the_slots_by_arithmetic_are_the_slots_by_zone(
    now: float, tz: str | None, default: str, quiet: tuple[int, int], max_delay: float
) -> None:
    rules = ContactRules(quiet_start_hour=quiet[0], quiet_end_hour=quiet[1], default_timezone=default)
    assert slots_with_hours(now, rules, tz, max_delay) == slots_by_zone(now, rules, tz, max_delay)


def test_slots_across_a_clock_change_keep_to_half_past_local_time() -> None:
    rules = ContactRules(quiet_start_hour=0, quiet_end_hour=0)  # no quiet hours
    ny = ZoneInfo("America/New_York")
    now = datetime(2026, 3, 8, 0, 10, tzinfo=ny).timestamp()  # clocks go from 02:00 to 03:00
    got = [
        datetime.fromtimestamp(t, ny).strftime("%H:%M")
        for t, _ in slots_with_hours(now, rules, "America/New_York", 4)
    ]
    assert got == ["00:10", "00:30", "01:30", "03:30", "04:30"]
    assert [h for _, h in slots_with_hours(now, rules, "America/New_York", 4)] == [0, 0, 1, 3, 4]


def test_an_uplift_snapshot_from_before_the_answer_rates_restores_without_them() -> None:
    model = _model_with_answers({"sms": 0.5}, n=50)
    old = UpliftModel.__new__(UpliftModel)
    state = {k: v for k, v in model.__dict__.items() if k not in ("answers", "answer_base", "answer_weight")}
    old.__setstate__(pickle.loads(pickle.dumps(state)))
    assert old.answer_rate("sms") == 0.25 and old.counts == model.counts
    again = pickle.loads(pickle.dumps(model))
    assert again.answer_rate("sms") == model.answer_rate("sms") != 0.25
