"""The learned policy's arbitration: eligibility, the contact filter, exact propensities, control
groups, exposures and their attribution, and the uplift model it scores with."""

from __future__ import annotations

import collections
import pickle
import random

import pytest
from river import checks

from app.action_catalog import load, load_file
from models import attribution
from models.arbitration import LearnedPolicy
from models.contact import ContactRules, ContactState
from models.decision import DecisionContext
from models.due import DueIndex
from models.facts import EventFacts
from models.profile import Profile
from models.recommend import Recommendation
from models.uplift import UpliftModel
from models.user_step import StepConfig, on_due, on_event
from tests.unit.policy_fixtures import DAY, NOON, viewer

CATALOG = load_file()


def _ctx(profile: Profile, rng: random.Random | None = None, **kw: object) -> DecisionContext:
    trigger = EventFacts(event_id="e9", type="view", channel="app", ts=NOON, item_id="c1")
    fields: dict[str, object] = {
        "profile": profile,
        "now": NOON,
        "rng": rng or random.Random(0),
        "trigger": trigger,
        "recommendations": lambda: [Recommendation("c7", 0.9, "viewed together with c1")],
    }
    return DecisionContext(**(fields | kw))  # type: ignore[arg-type]


def test_uplift_model_follows_rivers_conventions_and_pickles() -> None:
    model = UpliftModel()
    for check in checks.yield_checks(model):
        check(model.clone())
    model.learn_one({"item_views": 3.0, "action": "recommend_item", "channel": "app"}, True)
    again = pickle.loads(pickle.dumps(model))
    x = {"item_views": 3.0}
    assert again.uplift(x, "recommend_item", "app") == model.uplift(x, "recommend_item", "app")


def test_eligible_actions_per_trigger_and_stage_each_on_every_channel() -> None:
    verdict, exposure = LearnedPolicy(CATALOG).decide(_ctx(viewer()))
    offered = {(c.action, c.channel) for c in verdict.candidates}
    # a third view of an unbought item, a retained user: the reminder and a recommendation
    assert {a for a, _ in offered} == {"abandoned_view_reminder", "recommend_item"}
    assert {ch for _, ch in offered} == {"app", "wechat", "sms"}
    assert verdict.outcome == "sent" and exposure is not None and exposure.group == "treatment"
    new_user = viewer(stage="acquisition")
    names = {c.action for c in LearnedPolicy(CATALOG).decide(_ctx(new_user))[0].candidates}
    assert names == {"abandoned_view_reminder", "onboarding_nudge"}


def test_the_logged_propensity_is_the_exact_frequency_of_each_pick() -> None:
    """Over many seeds, each choice (and nothing) is picked as often as its logged probability
    says; the probabilities of the distinct choices sum to one."""
    policy = LearnedPolicy(CATALOG.model_copy(update={"exploration": 0.3}))
    picks: collections.Counter[tuple[str, str] | None] = collections.Counter()
    logged: dict[tuple[str, str] | None, float] = {}
    n = 6000
    for seed in range(n):
        verdict, _ = policy.decide(_ctx(viewer(), random.Random(seed)))
        d = verdict.decision
        key = (d.action, d.channel) if d is not None else None
        picks[key] += 1
        assert logged.setdefault(key, verdict.propensity) == verdict.propensity
    allowed = [c for c in verdict.candidates if not c.removed_by]
    assert len(logged) == len(allowed) + 1  # every allowed choice and "nothing" got picked
    assert sum(logged.values()) == pytest.approx(1.0)
    for key, p in logged.items():
        assert picks[key] / n == pytest.approx(p, abs=4 * (p * (1 - p) / n) ** 0.5), key


def test_no_pick_breaks_consent_or_contact_rules_even_when_exploring() -> None:
    rules = ContactRules(cooldown_s={"abandoned_view_reminder": 5 * DAY}, channel_max_per_day=5)
    earlier = ContactState().sent(
        "abandoned_view_reminder", "sms", at=NOON - DAY, action_id="a0", expires_at=NOON
    )
    consent = {"app": False}
    policy = LearnedPolicy(CATALOG.model_copy(update={"exploration": 1.0}))
    picked = set()
    for seed in range(300):
        ctx = _ctx(viewer(), random.Random(seed), rules=rules, consent=consent, contact=earlier)
        verdict, _ = policy.decide(ctx)
        if verdict.decision is not None:
            picked.add((verdict.decision.action, verdict.decision.channel))
    assert picked == {("recommend_item", "wechat"), ("recommend_item", "sms")}
    why = {(c.action, c.channel): c.removed_by for c in verdict.candidates}
    assert why[("recommend_item", "app")] == ("consent",)
    assert why[("abandoned_view_reminder", "wechat")] == ("cooldown",)
    paused = LearnedPolicy(CATALOG).decide(_ctx(viewer(), rules=ContactRules(paused=True)))
    assert paused[0].outcome == "no_action" and paused[1] is None  # nothing could be sent: no exposure


def test_control_users_are_decided_logged_and_exposed_untreated() -> None:
    verdict, exposure = LearnedPolicy(CATALOG).decide(_ctx(viewer(), control_share=1.0))
    assert verdict.outcome == "control" and verdict.send is None and verdict.decision is not None
    assert exposure is not None and exposure.group == "control" and exposure.action_type == "none"
    assert exposure.decided == verdict.decision.action_type


@pytest.mark.parametrize("control_share", [0.0, 1.0])
def test_every_exposure_window_opens_at_the_send_time_also_when_nothing_is_sent(control_share: float) -> None:
    # quiet hours over the decision (12:00 UTC, the user's zone UTC): the send is held to 13:00
    rules = ContactRules(quiet_start_hour=11, quiet_end_hour=13)
    verdict, exposure = LearnedPolicy(CATALOG).decide(
        _ctx(viewer(), rules=rules, control_share=control_share)
    )
    assert verdict.decision is not None and verdict.decision.send_at == NOON + 3600
    assert exposure is not None and exposure.at == verdict.decision.send_at
    assert exposure.until == exposure.at + CATALOG.attribution_days * DAY


def test_a_price_sensitive_user_gets_the_larger_coupon() -> None:
    at_risk = {"stage": "at_risk", "price_viewed": {"free": 9, "high": 1}}
    verdict, _ = LearnedPolicy(CATALOG).decide(_ctx(viewer(**at_risk)))
    offers = {c.offer for c in verdict.candidates if c.action == "winback_offer"}
    assert offers == {20.0}
    verdict, _ = LearnedPolicy(CATALOG).decide(_ctx(viewer(stage="at_risk", price_viewed={"high": 5})))
    assert {c.offer for c in verdict.candidates if c.action == "winback_offer"} == {10.0}


def test_min_score_sends_nothing_but_exploration() -> None:
    strict = CATALOG.model_copy(update={"min_score": 1e9, "exploration": 0.0})
    verdict, exposure = LearnedPolicy(strict).decide(_ctx(viewer()))
    assert verdict.outcome == "no_action" and verdict.propensity == 1.0
    assert exposure is not None and exposure.group == "none"  # its outcome is logged, not learned


def test_a_purchase_converts_the_open_exposure_and_silence_closes_the_window() -> None:
    one = "version: t\nexploration: 0\nactions:\n  - {name: r, type: recommend_item, item: viewed}\n"
    cfg = StepConfig(actions=load(one))
    p, due = Profile("u:1"), DueIndex({}, 0)
    t = NOON
    outcomes = []
    for i in range(3):
        view = EventFacts(event_id=f"v{i}", type="view", channel="app", ts=t + i, item_id="c1")
        outcomes += on_event(p, view, watermark=t + i, due=due, cfg=cfg).outcomes
    assert outcomes == [] and len(p.exposures) == 1
    buy = EventFacts(event_id="b", type="purchase", channel="app", ts=t + 3600, item_id="c1", spend=9.0)
    (converted,) = on_event(p, buy, watermark=t + 3600, due=due, cfg=cfg).outcomes
    assert converted.y is True and converted.decided == "recommend_item"
    # another exposure, then silence: the due time after the window hands out a non-conversion
    p2 = Profile("u:2")
    for i in range(3):
        view = EventFacts(event_id=f"w{i}", type="view", channel="app", ts=t + i, item_id="c2")
        on_event(p2, view, watermark=t + i, due=due, cfg=cfg)
    end = attribution.next_time(p2)
    assert end == t + 3 * DAY  # decided on the first view (this action needs no repeated views)
    woken = on_due(p2, end + 1, due, cfg)
    assert woken is not None and [o.y for o in woken.outcomes] == [False]
    assert p2.exposures == []
