"""The decision function and the per-user step."""

from __future__ import annotations

import random

from models.catalog import CatalogEntry
from models.churn import LabelRules
from models.contact import SHADOW, ContactRules, ContactState
from models.decision import Decision, DecisionContext, RulePolicy, decide
from models.due import DueIndex
from models.facts import EventFacts
from models.profile import Profile
from models.recommend import Recommendation
from models.user_step import StepConfig, on_due, on_event

DAY = 86_400.0


def view(i: int, ts: float, item: str = "c1", channel: str = "app") -> EventFacts:
    return EventFacts(event_id=f"e{i}", type="view", channel=channel, ts=ts, item_id=item)


def ctx(profile: Profile, trigger: EventFacts, **kw: object) -> DecisionContext:
    return DecisionContext(profile=profile, now=trigger.ts, rng=random.Random(0), trigger=trigger, **kw)  # type: ignore[arg-type]


def test_rule_fires_on_third_view_on_the_most_used_channel_with_readable_reasons() -> None:
    p = Profile("u:1", events=5, by_channel={"app": 1, "wechat": 4}, item_views={"c1": [3, 10.0]})
    v = decide(ctx(p, view(3, 10.0), catalog={"c1": CatalogEntry("Python 101", 99.0)}))
    d, contact = v.send, v.contact
    assert d is not None
    assert (d.action_type, d.channel, d.item_ids) == ("recommend_item", "wechat", ("c1",))
    assert "viewed 'Python 101' 3 times without buying it" in d.reasons
    assert contact.last_sent("recommend_item") == 10.0 == d.send_at
    assert d.expires_at == 10.0 + RulePolicy().expiry_s


def test_no_action_below_threshold_after_purchase_in_cooldown_or_without_consent() -> None:
    p = Profile("u:1", by_channel={"app": 2}, item_views={"c1": [2, 1.0]})
    assert decide(ctx(p, view(2, 1.0))).outcome == "none"
    p.item_views["c1"] = [3, 2.0]
    p.bought.append("c1")
    assert decide(ctx(p, view(3, 2.0))).outcome == "none"
    p.bought.clear()
    recent = ContactState().sent("recommend_item", "web", at=2.0 - DAY / 2, action_id="a", expires_at=2.0)
    cooled = decide(ctx(p, view(3, 2.0), contact=recent))
    assert cooled.send is None and cooled.outcome == "no_action"
    assert cooled.candidates[0].removed_by == ("cooldown",)
    assert (cooled.decided_at, cooled.trigger_event_id) == (2.0, "e3")  # logged with its time
    assert decide(ctx(p, view(3, 2.0 + DAY), contact=recent)).send is not None
    revoked = decide(ctx(p, view(3, 2.0), consent={"app": False}))
    assert revoked.send is None and revoked.candidates[0].removed_by == ("consent",)


def test_decision_is_deterministic_and_its_id_is_stable() -> None:
    p = Profile("u:1", by_channel={"app": 2}, item_views={"c1": [3, 1.0]})
    a, b = decide(ctx(p, view(3, 1.0))).send, decide(ctx(p, view(3, 1.0))).send
    assert a == b and a is not None and len(a.action_id) == 32


def test_backfill_events_update_state_but_never_decide() -> None:
    p, idx = Profile("u:1"), DueIndex({}, 0)
    cfg = StepConfig(backfill_max_age_s=DAY)
    results = [on_event(p, view(i, float(i)), watermark=10 * DAY, due=idx, cfg=cfg) for i in range(4)]
    assert p.events == 4
    assert all(r.backfill and r.decision is None for r in results)


def test_no_send_mode_decides_without_recording_contact() -> None:
    p, idx = Profile("u:1"), DueIndex({}, 0)
    cfg = StepConfig(send_enabled=False)
    decisions = [on_event(p, view(i, float(i)), watermark=None, due=idx, cfg=cfg).decision for i in range(4)]
    assert decisions[2] is not None and decisions[3] is not None  # no cooldown recorded
    assert p.contact == []


def test_silent_user_goes_at_risk_then_dormant_through_the_due_index_and_wakes_on_activity() -> None:
    store: dict[str, list[str]] = {}
    p, idx = Profile("u:1"), DueIndex(store, 0, bucket_s=3600)
    # one active day: default rhythm 7 days -> at risk after 10, dormant after 14 (the daily churn
    # ticks are switched off here, so that only stage changes wake the user; see test_churn)
    cfg = StepConfig(labels=LabelRules(active_window_s=0.0))
    on_event(p, view(0, 0.0), watermark=0.0, due=idx, cfg=cfg)
    assert p.due_at == 10 * DAY and store and p.stage == "acquisition"
    assert on_due(p, 5 * DAY, idx, cfg) is None  # not due yet: a stale hint changes nothing
    due, _ = idx.pop_due(11 * DAY, 0)
    woken = on_due(p, 11 * DAY, idx, cfg)
    assert due == ["u:1"] and woken is not None
    assert [(c.from_stage, c.to_stage) for c in woken.transitions] == [("acquisition", "at_risk")]
    assert p.due_at == 14 * DAY
    due, _ = idx.pop_due(15 * DAY, 0)
    woken = on_due(p, 15 * DAY, idx, cfg)
    assert due == ["u:1"] and woken is not None and p.dormant
    assert [(c.to_stage, c.at) for c in woken.transitions] == [("dormant", 14 * DAY)]  # at its own time
    result = on_event(p, view(1, 16 * DAY), watermark=15 * DAY, due=idx, cfg=cfg)
    assert not p.dormant and [c.to_stage for c in result.transitions] == ["acquisition"]
    assert p.due_at is not None and p.due_at > 16 * DAY


def test_decision_random_source_is_seeded_reproducible_and_pickles() -> None:
    import pickle
    import zlib

    from models.user_step import seeded_rng

    a, b = seeded_rng("u:1", "app/e1"), seeded_rng("u:1", "app/e1")
    assert [a.random(), a.randint(0, 9), a.choice("xyz")] == [b.random(), b.randint(0, 9), b.choice("xyz")]
    fresh = seeded_rng("u:2", "app/e2")
    assert pickle.loads(pickle.dumps(fresh)).random() == random.Random(zlib.crc32(b"u:2|app/e2")).random()
    assert seeded_rng("u:1", "app/e1").random() != seeded_rng("u:1", "app/e2").random()


def test_a_watermark_jumping_over_both_thresholds_gives_the_same_transitions_at_their_own_times() -> None:
    lived, replayed = Profile("u:1"), Profile("u:1")
    cfg = StepConfig()
    for p in (lived, replayed):
        on_event(p, view(0, 0.0), watermark=0.0, due=DueIndex({}, 0), cfg=cfg)
    crawl = DueIndex({}, 0)
    steps = []
    for day in range(1, 21):  # the watermark moves a day at a time
        woken = on_due(lived, day * DAY, crawl, cfg)
        steps += woken.transitions if woken else ()
    jumped = on_due(replayed, 20 * DAY, DueIndex({}, 0), cfg)  # one jump of 20 days
    jump = jumped.transitions if jumped else ()
    assert [(c.to_stage, c.at) for c in steps] == [(c.to_stage, c.at) for c in jump]
    assert [(c.to_stage, c.at) for c in jump] == [("at_risk", 10 * DAY), ("dormant", 14 * DAY)]
    assert lived.pending == replayed.pending and lived.scored_at == replayed.scored_at


def test_a_merged_anonymous_profile_goes_quiet_and_the_user_takes_over_its_stage() -> None:
    from models.profile import merge_into
    from models.user_step import on_merged

    cfg, idx = StepConfig(), DueIndex({}, 0)
    anon, user = Profile("a:d1"), Profile("u:1")
    for i in range(5):  # five anonymous events activate
        on_event(anon, view(i, float(i)), watermark=None, due=idx, cfg=cfg)
    assert anon.stage == "activation" and anon.due_at is not None
    assert merge_into(user, anon)
    anon.merged_into = "u:1"
    woken = on_merged(user, None, idx, cfg)
    assert [(c.from_stage, c.to_stage) for c in woken.transitions] == [("acquisition", "activation")]
    assert user.due_at == anon.due_at
    assert on_due(anon, 30 * DAY, idx, cfg) is None  # the folded profile never transitions again


def test_the_rule_adds_the_users_recommendations_with_their_reasons() -> None:
    p = Profile("u:1", events=3, by_channel={"app": 3}, item_views={"c1": [3, 10.0]})
    catalog = {"c2": CatalogEntry("Python 102", 99.0)}
    recs = [Recommendation("c1", 1.0, "trending"), Recommendation("c2", 0.9, "similar to c1")]
    recs.append(Recommendation("c3", 0.5, "popular in your segment"))
    recs.append(Recommendation("c4", 0.4, "trending"))
    d = decide(ctx(p, view(3, 10.0), catalog=catalog, recommendations=lambda: recs)).send
    assert d is not None and d.item_ids == ("c1", "c2", "c3")  # the viewed item first, then two
    assert "also recommended: 'Python 102' (similar to c1)" in d.reasons
    asked: list[int] = []
    quiet = Profile("u:2", by_channel={"app": 1}, item_views={"c1": [1, 1.0]})
    assert decide(ctx(quiet, view(1, 1.0), recommendations=lambda: asked.append(1) or recs)).send is None
    assert asked == []  # computed only when an action needs them


def test_an_event_on_an_item_carries_the_users_other_recent_items_for_the_similarity_model() -> None:
    p, idx = Profile("u:1"), DueIndex({}, partition=0)
    on_event(p, view(1, 1.0, item="a"), watermark=None, due=idx, cfg=StepConfig())
    result = on_event(p, view(2, 2.0, item="b"), watermark=None, due=idx, cfg=StepConfig())
    assert result.interaction is not None
    assert (result.interaction["item"], result.interaction["kind"]) == ("b", "view")
    assert result.interaction["recent"] == [["a", 1.0]]  # the user's other items, not the item itself
    click = EventFacts(event_id="e3", type="click", channel="app", ts=3.0)
    assert on_event(p, click, watermark=None, due=idx, cfg=StepConfig()).interaction is None  # no item


def test_a_dismissed_item_is_never_recommended_and_is_not_learned_as_taste() -> None:
    from models.recommend import Recommender
    from models.user_step import Scorers

    recommender = Recommender()
    for u in range(20):  # everyone who views c1 buys c2, then c3
        recommender.learn_one({"item": "c2", "kind": "purchase", "ts": u * 60.0, "recent": [["c1", 1.0]]})
        recommender.learn_one({"item": "c3", "kind": "purchase", "ts": u * 60.0 + 1, "recent": [["c1", 1.0]]})
    models = Scorers(recommender=recommender.attach({}))
    p, idx, cfg = Profile("u:1"), DueIndex({}, partition=0), StepConfig()
    dismiss = EventFacts(event_id="d", type="click", channel="app", ts=5_000.0, item_id="c2", dismiss=True)
    assert on_event(p, dismiss, watermark=None, due=idx, cfg=cfg, models=models).interaction is None
    decisions = [
        on_event(p, view(i, 5_000.0 + i), watermark=None, due=idx, cfg=cfg, models=models).decision
        for i in range(3)
    ]
    d = decisions[-1]
    assert d is not None and d.item_ids[0] == "c1" and "c3" in d.item_ids
    assert "c2" not in d.item_ids


def test_a_revoked_channel_is_never_chosen_the_next_most_engaged_one_is() -> None:
    from models.profile import apply_consent

    cfg, idx = StepConfig(), DueIndex({}, partition=0)
    p = Profile("u:1")

    def three_views(item: str, t: float) -> Decision | None:  # each batch a cooldown after the last
        return [
            on_event(p, view(int(t) + i, t + i, item=item), watermark=None, due=idx, cfg=cfg).decision
            for i in range(3)
        ][-1]

    on_event(p, view(0, 1.0, item="c9", channel="web"), watermark=None, due=idx, cfg=cfg)
    apply_consent(p, "app", False, 0.5)
    d = three_views("c1", 2.0)
    assert d is not None and d.channel == "web"  # app is the most engaged, but revoked
    apply_consent(p, "web", False, 0.5)
    assert three_views("c2", 2 * DAY) is None  # no consented channel left: nothing is sent
    apply_consent(p, "app", True, 3 * DAY)  # granted again later
    again = three_views("c3", 4 * DAY)
    assert again is not None and again.channel == "app"


def test_control_and_holdout_users_are_decided_and_logged_but_never_sent_nor_counted() -> None:
    p = Profile("u:1", by_channel={"app": 2}, item_views={"c1": [3, 1.0]})
    control = decide(ctx(p, view(3, 1.0), control_share=1.0))
    assert control.outcome == "control" and control.send is None and control.decision is not None
    [shadow] = control.contact.log  # counted by the caps like a send, so the groups compare
    assert shadow[-1] == SHADOW and control.contact.settle(10 * DAY, ContactRules()).ignored == 0
    again = decide(ctx(p, view(4, 2.0), control_share=1.0, contact=control.contact))
    assert again.outcome == "no_action" and "cooldown" in again.candidates[0].removed_by
    assert control.contact.cancel_all(0.0) == ()  # nothing was published, nothing to withdraw
    held = decide(ctx(p, view(3, 1.0), holdouts={"recommend_item": 1.0}))
    assert held.outcome == "holdout" and held.send is None and held.decision_id == control.decision_id
    sent = decide(ctx(p, view(3, 1.0), holdouts={"winback_offer": 1.0}))
    assert sent.outcome == "sent" and sent.propensity == 1.0 and not sent.explored


def test_the_control_group_is_the_configured_share_of_users_and_stable() -> None:
    from models.decision import group

    users = [f"u:{i}" for i in range(20_000)]
    arms = [group(u, "recommend_item", 0.1, {"recommend_item": 0.2}) for u in users]
    share = arms.count("control") / len(users)
    held = arms.count("holdout") / (len(users) - arms.count("control"))
    assert abs(share - 0.1) < 0.01 and abs(held - 0.2) < 0.015
    assert arms == [group(u, "recommend_item", 0.1, {"recommend_item": 0.2}) for u in users]
    # holdouts are drawn per action type, independently of each other
    other = [group(u, "winback_offer", 0.1, {"winback_offer": 0.2}) for u in users]
    both = sum(a == b == "holdout" for a, b in zip(arms, other, strict=True)) / len(users)
    assert abs(both - 0.9 * 0.2 * 0.2) < 0.01


def test_the_step_logs_every_decision_and_sends_only_the_treated() -> None:
    idx = DueIndex({}, 0)
    for share, outcome in ((0.0, "sent"), (1.0, "control")):
        p = Profile("u:1")
        cfg = StepConfig(control_share=share)
        results = [on_event(p, view(i, float(i)), watermark=None, due=idx, cfg=cfg) for i in range(3)]
        assert [r.verdict is None for r in results] == [True, True, False]
        assert results[-1].verdict is not None and results[-1].verdict.outcome == outcome
        assert (results[-1].decision is not None) == (outcome == "sent")
