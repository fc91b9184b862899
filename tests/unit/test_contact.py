"""The contact policy (models/contact.py), feedback on the contact state, and the independent
violation checker (lab/violations.py) against the worker's own decisions."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.rules import contact_rules, setup
from app.settings import Settings
from lab.violations import check
from models.contact import ContactRules, ContactState, blocked, in_quiet_hours, send_time
from models.due import DueIndex
from models.facts import EventFacts
from models.profile import Profile, merge_into
from models.user_step import ContactUpdate, StepConfig, on_consent, on_event, on_feedback

HOUR, DAY = 3600.0, 86_400.0
T0 = datetime(2026, 3, 2, 4, 0, tzinfo=UTC).timestamp()  # Monday 12:00 in Shanghai


def sent(state: ContactState, kind: str, channel: str, at: float, aid: str) -> ContactState:
    return state.sent(kind, channel, at=at, action_id=aid, expires_at=at + DAY)


def test_caps_hold_over_any_window_overall_and_per_channel() -> None:
    rules = ContactRules(max_per_day=2, max_per_week=3, channel_max_per_day=1, channel_max_per_week=2)
    s = sent(ContactState(), "a", "app", T0, "1")
    assert blocked(rules, s, "b", "app", at=T0 + HOUR) == ("channel_cap_day",)
    assert blocked(rules, s, "b", "sms", at=T0 + HOUR) == ()
    assert blocked(rules, s, "b", "app", at=T0 - HOUR) == ("channel_cap_day",)  # scheduled ahead of it
    s = sent(s, "b", "sms", T0 + HOUR, "2")
    assert blocked(rules, s, "c", "email", at=T0 + 2 * HOUR) == ("cap_day",)
    assert blocked(rules, s, "c", "email", at=T0 + DAY + 2 * HOUR) == ()
    s = sent(s, "c", "email", T0 + DAY + 2 * HOUR, "3")
    assert blocked(rules, s, "d", "web", at=T0 + 3 * DAY) == ("cap_week",)
    assert blocked(rules, s, "d", "app", at=T0 + 3 * DAY) == ("cap_week",)
    assert blocked(rules, s, "d", "web", at=T0 + 8 * DAY + 3 * HOUR) == ()


def test_cooldown_is_per_action_type_and_configurable() -> None:
    rules = ContactRules(max_per_day=9, channel_max_per_day=9, cooldown_s={"winback_offer": 14 * DAY})
    s = sent(ContactState(), "winback_offer", "app", T0, "1")
    assert "cooldown" in blocked(rules, s, "winback_offer", "sms", at=T0 + 10 * DAY)
    assert "cooldown" not in blocked(rules, s, "winback_offer", "sms", at=T0 + 14 * DAY)
    assert "cooldown" not in blocked(rules, s, "recommend_item", "app", at=T0 + HOUR)
    assert rules.memory_s == 14 * DAY + rules.late_s


def test_a_late_event_still_counts_the_sends_a_newer_decision_no_longer_needed() -> None:
    """Processed out of event-time order: the newer event's decision settles the log first, and
    the late event's decision, an hour earlier in event time, must still see a week's sends."""
    rules = ContactRules(max_per_day=9, max_per_week=2, channel_max_per_day=9, channel_max_per_week=9)
    s = sent(sent(ContactState(), "a", "app", T0, "1"), "b", "web", T0 + DAY, "2")
    for late_s, expected in ((rules.late_s, ("cap_week",)), (0.0, ())):  # without the margin: missed
        r = replace(rules, late_s=late_s)
        newer = s.settle(T0 + 7 * DAY + HOUR, r)  # a week and an hour after the first send
        assert blocked(r, newer, "c", "sms", at=T0 + 7 * DAY - HOUR) == expected


def test_quiet_hours_move_the_send_to_the_next_local_morning() -> None:
    rules = ContactRules(quiet_start_hour=21, quiet_end_hour=8)
    evening = datetime(2026, 3, 2, 14, 30, tzinfo=UTC).timestamp()  # 22:30 in Shanghai
    morning = datetime(2026, 3, 3, 0, 0, tzinfo=UTC).timestamp()  # 08:00 in Shanghai
    assert send_time(rules, evening, "Asia/Shanghai") == morning
    assert send_time(rules, evening, None) == morning  # the default timezone
    assert send_time(rules, evening, "Not/AZone") == morning  # an unknown zone falls back
    early = datetime(2026, 3, 2, 22, 0, tzinfo=UTC).timestamp()  # 06:00 the same morning in Shanghai
    assert send_time(rules, early, "Asia/Shanghai") == morning
    assert send_time(rules, evening, "Europe/London") == evening  # 14:30 in London
    assert send_time(ContactRules(quiet_start_hour=8, quiet_end_hour=8), evening, None) == evening
    day_window = ContactRules(quiet_start_hour=12, quiet_end_hour=14)  # a midday break, no wrap
    assert in_quiet_hours(day_window, T0, "Asia/Shanghai") and not in_quiet_hours(day_window, T0, "UTC")
    # across a DST change: 22:30 in Los Angeles on the night clocks go forward -> 08:00 PDT
    before = datetime(2026, 3, 8, 6, 30, tzinfo=UTC).timestamp()  # 22:30 PST, 7 March
    assert (
        send_time(rules, before, "America/Los_Angeles") == datetime(2026, 3, 8, 15, 0, tzinfo=UTC).timestamp()
    )


def test_ignored_messages_suppress_the_user_and_an_answer_resets_the_count() -> None:
    rules = ContactRules(max_ignored=3, suppression_s=30 * DAY)
    s = ContactState()
    for i in range(2):
        s = sent(s, "a", "app", T0 + i * 2 * DAY, str(i)).settle(T0 + (i * 2 + 1.5) * DAY, rules)
    assert s.ignored == 2 and s.suppressed_until is None
    answered = s.answered("1")
    assert answered.ignored == 0  # a late open still counts
    s = sent(s, "a", "app", T0 + 4 * DAY, "2").settle(T0 + 5.5 * DAY, rules)
    assert s.ignored == 0 and s.suppressed_until == T0 + 5 * DAY + 30 * DAY
    assert blocked(rules, s, "b", "sms", at=T0 + 20 * DAY) == ("suppressed",)
    later = s.settle(T0 + 36 * DAY, rules)
    assert later.suppressed_until is None and later.log == ()  # old sends forgotten
    assert s.settle(T0 + 5.5 * DAY, rules) is s  # settling twice counts nothing twice


def test_feedback_answers_and_unsubscribes_and_a_revocation_withdraws_later_sends() -> None:
    p = Profile("u:1", contact=[[T0, "sms", "a", "x1", T0 + DAY, 0]], ignored=2)
    assert not on_feedback(p, "delivered", "x1", "sms", T0 + 60).changed
    assert on_feedback(p, "clicked", "x1", "sms", T0 + 120).changed and p.ignored == 0
    assert not on_feedback(p, "clicked", "x1", "sms", T0 + 180).changed
    assert not on_feedback(p, "opened", "unknown", "sms", T0 + 180).changed
    p.contact.append([T0 + 10 * HOUR, "sms", "b", "x2", T0 + DAY, 0])  # scheduled for the morning
    p.contact.append([T0 + 10 * HOUR, "app", "c", "x3", T0 + DAY, 0])
    update = on_feedback(p, "unsubscribed", "x1", "sms", T0 + 240)
    assert update.changed and p.consented == {"sms": False}
    assert [s.action_id for s in update.cancelled] == ["x2"]  # x1 went out before; the app send stays
    assert [s[3] for s in p.contact] == ["x1", "x3"]
    assert on_consent(p, "sms", True, T0 + 300) == ContactUpdate(True)
    assert on_consent(p, "sms", True, T0 + 300) == ContactUpdate(False)  # a repeat changes nothing


def test_a_stored_profile_from_before_the_contact_log_loads_and_merges_union_the_logs() -> None:
    old = Profile.from_dict({"canonical": "u:1", "contact": {"recommend_item": T0}})
    assert old.contact == [[T0, "", "recommend_item", "legacy:recommend_item", T0, 1]]
    anon = Profile("a:1", contact=[[T0 + 1, "app", "x", "id2", T0 + DAY, 0]], suppressed_until=T0 + 9)
    merge_into(old, anon)
    assert [s[3] for s in old.contact] == ["legacy:recommend_item", "id2"] and old.suppressed_until == T0 + 9


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def action(aid: str, user: str, channel: str, at: float, kind: str = "recommend_item") -> dict[str, str]:
    return {"action_id": aid, "user_id": user, "channel": channel, "action_type": kind, "created_at": iso(at)}


def test_the_checker_finds_each_kind_of_violation() -> None:
    noon = T0  # 12:00 in Shanghai
    assert check([action("1", "u", "app", noon)]) == Counter()
    assert check([action("1", "u", "app", noon + 10 * HOUR)]) == Counter(quiet_hours=1)  # 22:00
    assert check([action("1", "u", "app", noon + 10 * HOUR)], timezones={"u": "Europe/London"}) == Counter()
    # a shared device: each send is judged in the timezone of the event that triggered it
    late = {**action("1", "u", "app", noon + 10 * HOUR), "trigger_event_id": "e1"}
    early = action("2", "u", "app", noon - 9 * DAY)
    where = {"e1": "Europe/London"}
    assert check([late, early], timezones={"u": "Asia/Shanghai"}, event_timezones=where) == Counter()
    # without the trigger, the user's one timezone: the early send (04:00 in London) is quiet
    assert check([late, early], timezones={"u": "Europe/London"}) == Counter(quiet_hours=1)
    assert check(
        [late], timezones={"u": "Europe/London"}, event_timezones={"e1": "Asia/Shanghai"}
    ) == Counter(quiet_hours=1)
    revoked = [{"user_id": "u", "channel": "app", "granted": False, "at": iso(noon - 1)}]
    assert check([action("1", "u", "app", noon)], consent=revoked) == Counter(consent=1)
    regranted = [*revoked, {"user_id": "u", "channel": "app", "granted": True, "at": iso(noon - 1)}]
    assert check([action("1", "u", "app", noon)], consent=regranted) == Counter(consent=1)  # a tie: revoked
    unsub = [
        {"user_id": "u", "channel": "sms", "kind": "unsubscribed", "at": iso(noon - 1), "action_id": "0"}
    ]
    assert check([action("1", "u", "sms", noon)], feedback=unsub) == Counter(consent=1)
    assert check([action("1", "u", "app", noon)], erase=[{"user_id": "u", "at": iso(noon)}]) == Counter(
        erased=1
    )
    two = [action("1", "u", "app", noon), action("2", "u", "app", noon + HOUR, "other")]
    assert check(two) == Counter(channel_cap_day=1)
    assert check([action("1", "u", "app", noon), action("2", "u", "sms", noon + HOUR)]) == Counter(cooldown=1)
    assert check([*two, {"event": "action_cancelled", **two[1]}]) == Counter()
    week = [
        action(str(i), "u", ("app", "sms", "web")[i % 3], noon + i * (DAY + HOUR), f"k{i}") for i in range(6)
    ]
    assert check(week) == Counter(cap_week=1)


# -- the property: the worker's decisions never break a rule the checker can see -----------------
step = st.tuples(
    st.floats(min_value=0.0, max_value=30 * HOUR),  # time since the previous record
    st.sampled_from(["view", "view", "view", "view", "consent", "answer", "unsubscribe"]),
    st.sampled_from(["c1", "c2", "c3"]),
    st.sampled_from(["app", "sms", "wechat"]),
    st.booleans(),
)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(step, min_size=20, max_size=120),
    st.sampled_from(["Asia/Shanghai", "America/Los_Angeles", None]),
)
def test_the_worker_never_emits_an_action_the_independent_checker_flags(
    records: list[tuple[float, str, str, str, bool]], tz: str | None
) -> None:
    cfg = StepConfig()
    rules = contact_rules(Settings())
    p, idx = Profile("u:u1"), DueIndex({}, 0)
    actions: list[dict[str, str]] = []
    consent: list[dict[str, object]] = []
    feedback: list[dict[str, str]] = []
    sends: list[dict[str, str]] = []
    t = T0
    for i, (gap, kind, item, channel, flag) in enumerate(records):
        t = round(t + gap, 3)  # times travel as ISO strings: keep them exact on both sides
        update = None
        if kind == "consent":
            update = on_consent(p, channel, flag, t)
            consent.append({"user_id": "u1", "channel": channel, "granted": flag, "at": iso(t)})
        elif kind == "unsubscribe":
            update = on_feedback(p, "unsubscribed", "any", channel, t)
            feedback.append({"user_id": "u1", "channel": channel, "kind": "unsubscribed", "at": iso(t)})
        elif kind == "answer" and sends:
            on_feedback(p, "clicked", sends[-1]["action_id"], sends[-1]["channel"], t)
        elif kind == "view":
            facts = EventFacts(
                event_id=f"e{i}", type="view", channel=channel, ts=t, item_id=item, timezone=tz
            )
            d = on_event(p, facts, watermark=None, due=idx, cfg=cfg).decision
            if d is not None:
                a = action(d.action_id, "u1", d.channel, d.created_at, d.action_type)
                sends.append(a)
                actions.append(a | {"send_at": iso(d.send_at)})
        for send in update.cancelled if update else ():
            actions.append({"event": "action_cancelled", "action_id": send.action_id})
    found = check(
        actions, consent=consent, feedback=feedback, timezones={"u1": tz} if tz else {}, rules=rules
    )
    assert found == Counter()


def test_the_property_above_is_not_vacuous() -> None:
    """The same kind of stream yields actions, and without the contact rules it breaks them."""
    cfg = StepConfig()
    p, idx = Profile("u:u1"), DueIndex({}, 0)
    out = []
    for i in range(60):
        t = T0 + i * 2 * HOUR
        facts = EventFacts(event_id=f"e{i}", type="view", channel="app", ts=t, item_id=f"c{i // 3}")
        d = on_event(p, facts, watermark=None, due=idx, cfg=cfg).decision
        if d is not None:
            out.append(action(d.action_id, "u1", d.channel, d.created_at) | {"send_at": iso(d.send_at)})
    assert len(out) >= 3
    assert check(out) == Counter()
    unruly = [action(str(i), "u1", "app", T0 + i * 2 * HOUR) for i in range(0, 60, 3)]
    assert sum(check(unruly).values()) > 0


@pytest.mark.slow
def test_the_worker_policy_in_the_closed_loop_breaks_no_contact_rule() -> None:
    """A simulated month with consent revocations, unsubscribes and erasures: the worker's step
    sends actions, and the independent checker finds no violation in them; the same run checked
    against stricter rules than the policy used does find some (the check is not vacuous)."""
    from lab.sim.policy_run import run_worker_policy
    from lab.sim.world import WorldConfig

    world, models = WorldConfig(days=30, users=600, seed=4), setup(Settings())
    report = run_worker_policy(world, models)
    assert report["policy.actions"] > 100
    assert report["policy.violations"] == 0, report["policy.violations_by_rule"]
    stricter = replace(models.step.contact, quiet_start_hour=12, quiet_end_hour=20, channel_max_per_week=1)
    loose = run_worker_policy(world, models, checker_rules=stricter)
    assert loose["policy.violations_by_rule"].get("quiet_hours", 0) > 0
    assert loose["policy.violations_by_rule"].get("channel_cap_week", 0) > 0


@pytest.mark.slow
def test_the_learned_policy_in_the_closed_loop_breaks_no_contact_rule() -> None:
    """The learned policy (catalog, cooldowns per action, exploration) checked the same way."""
    from app.action_catalog import load_file
    from lab.sim.policy_run import run_worker_policy
    from lab.sim.world import WorldConfig

    world, actions, models = WorldConfig(days=30, users=400, seed=5), load_file(), setup(Settings())
    report = run_worker_policy(world, models, control_share=0.1, actions=actions)
    assert report["policy.actions"] > 100 and report["policy.explored"] > 10
    assert report["policy.violations"] == 0, report["policy.violations_by_rule"]
    # the catalog's own cooldowns are shorter
    stricter = replace(models.step.contact, default_cooldown_s=10 * DAY)
    loose = run_worker_policy(world, models, control_share=0.1, actions=actions, checker_rules=stricter)
    assert loose["policy.violations_by_rule"].get("cooldown", 0) > 0
