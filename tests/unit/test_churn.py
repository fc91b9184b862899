"""Churn risk and value (models.churn, models.user_step): delayed labels in event time, the
calibrated online classifier, its drift detector, and the pending snapshots inside the profile."""

from __future__ import annotations

import math
import pickle
import random

from river import checks

from models.churn import (
    CHURN_FEATURES,
    ChurnModel,
    LabelRules,
    Prequential,
    ValueModel,
    expected_calibration_error,
    on_activity,
    on_watermark,
    snapshot,
)
from models.due import DueIndex
from models.facts import EventFacts
from models.metrics import roc_auc
from models.profile import SNAP_T, Profile, merge_into
from models.user_step import Scorers, StepConfig, on_due, on_event

DAY = 86_400.0
H = 14 * DAY
RULES = LabelRules()
X = dict.fromkeys(CHURN_FEATURES, 0.0)


def _profile_with_snapshot(t: float = 10 * DAY) -> Profile:
    p = Profile("u:1")
    assert snapshot(p, t, X, 0.3, 12.0, RULES)
    return p


def test_models_follow_rivers_conventions() -> None:
    for model in (ChurnModel(), ValueModel()):
        for check in checks.yield_checks(model):
            check(model.clone())


def test_activity_inside_the_horizon_retains_and_the_label_is_handed_out_at_t_plus_h() -> None:
    p = _profile_with_snapshot()
    on_activity(p, 10 * DAY + H, 5.0, RULES)  # the horizon itself is inside the window
    assert on_watermark(p, 10 * DAY + H, RULES) == []  # not past t + H yet: nothing handed out
    (label,) = on_watermark(p, 10 * DAY + H + 1, RULES)
    assert (label.model, label.y, label.score, label.t) == ("churn", 0.0, 0.3, 10 * DAY)


def test_no_activity_until_the_watermark_passes_t_plus_h_is_churned() -> None:
    p = _profile_with_snapshot()
    on_activity(p, 10 * DAY + H + 60, 5.0, RULES)  # after the horizon: does not retain
    on_activity(p, 9 * DAY, 5.0, RULES)  # out of order, before the snapshot: does not retain
    (label,) = on_watermark(p, 10 * DAY + H + 1, RULES)
    assert label.y == 1.0 and label.x == X


def test_a_snapshot_keeps_the_features_by_value_to_float32_precision() -> None:
    rng = random.Random(4)
    x = {f: rng.uniform(-50, 50) for f in CHURN_FEATURES}
    p = Profile("u:1")
    snapshot(p, 0.0, x, 0.5, 1.0, RULES)
    x[CHURN_FEATURES[0]] = 1e6  # a later change of the caller's dict does not reach the snapshot
    (label,) = [lab for lab in on_watermark(Profile.loads(p.dumps()), H + 1, RULES) if lab.model == "churn"]
    assert all(abs(label.x[f] - v) <= 1e-5 * max(1.0, abs(v)) for f, v in x.items() if f != CHURN_FEATURES[0])
    assert abs(label.x[CHURN_FEATURES[0]]) <= 50


def test_value_label_is_the_spend_inside_its_horizon_whatever_the_arrival_order() -> None:
    p = _profile_with_snapshot()
    for ts, spend in ((30 * DAY, 20.0), (12 * DAY, 9.5), (41 * DAY, 100.0), (5 * DAY, 7.0)):
        on_activity(p, ts, spend, RULES)
    labels = on_watermark(p, 10 * DAY + 30 * DAY + 1, RULES)
    value = [lab for lab in labels if lab.model == "value"]
    assert [(v.y, v.score) for v in value] == [(29.5, 12.0)] and p.pending == []


def test_pending_snapshots_survive_a_restart_and_resolve_the_same() -> None:
    lived, restarted = _profile_with_snapshot(), _profile_with_snapshot()
    on_activity(lived, 12 * DAY, 3.0, RULES)
    restarted = Profile.loads(restarted.dumps())  # the table value is the profile, pending included
    on_activity(restarted, 12 * DAY, 3.0, RULES)
    restarted = Profile.loads(restarted.dumps())
    assert on_watermark(lived, 50 * DAY, RULES) == on_watermark(restarted, 50 * DAY, RULES)


def test_sampling_policy_bounds_the_pending_snapshots() -> None:
    p = Profile("u:1")
    kept = [snapshot(p, i * DAY, X, 0.1, 0.0, RULES) for i in range(100)]
    assert kept[:4] == [True, False, False, True]  # one per sample_every_s (3 days)
    assert len(p.pending) == RULES.max_pending and p.pending[-1][SNAP_T] == 99 * DAY


def test_a_silent_user_is_scored_every_day_until_the_active_window_ends() -> None:
    cfg, idx = StepConfig(), DueIndex({}, 0)
    p = Profile("u:1")
    view = EventFacts(event_id="e0", type="view", channel="app", ts=0.5 * DAY, item_id="c")
    on_event(p, view, watermark=None, due=idx, cfg=cfg)
    scored = []
    for day in range(1, 50):
        woken = on_due(p, day * DAY, idx, cfg)
        if woken is not None:
            scored.append(p.scored_at)
    ticks = [day * DAY for day in range(1, 31)]  # each UTC midnight while silent at most 30 days
    assert sorted({s for s in scored if s is not None and s % DAY == 0}) == ticks
    churned = [lab for lab in on_watermark(p, 100 * DAY, cfg.labels) if lab.model == "churn"]
    assert churned == [] and p.pending == []  # every snapshot was labelled on the way (all churned)


def test_a_merged_anonymous_profile_hands_its_pending_snapshots_to_the_user() -> None:
    anon, user = _profile_with_snapshot(), Profile("u:2")
    anon.canonical = "a:d1"
    assert merge_into(user, anon)
    on_activity(user, 11 * DAY, 0.0, RULES)
    (label,) = on_watermark(user, 10 * DAY + H + 1, RULES)
    assert label.user == "u:2" and label.y == 0.0


def test_auc_climbs_above_0_9_when_churn_depends_on_one_feature() -> None:
    rng, model, window = random.Random(3), ChurnModel(), Prequential(window=1000)
    for _ in range(4000):
        x = {**X, "recency_days": rng.uniform(0, 30), "spend": rng.gauss(0, 1)}
        y = rng.random() < 1 / (1 + math.exp(-(x["recency_days"] - 15) / 2))
        window.add(model.predict_proba_one(x)[True], y)  # scored before it is learned
        model.learn_one(x, y)
    auc = window.auc()
    assert auc is not None and auc > 0.9
    assert model.explain_one({**X, "recency_days": 29.0})[0][0] == "recency_days"
    assert model.reasons({**X, "recency_days": 29.0})[0] == "long inactive"
    x = {**X, "recency_days": 29.0}
    assert model.assess(x) == (model.predict_proba_one(x)[True], model.reasons(x))


def test_probabilities_are_calibrated_online() -> None:
    rng, model = random.Random(5), ChurnModel()
    probs, labels = [], []
    for i in range(20_000):
        z = rng.gauss(0, 1)
        y = rng.random() < 0.15 / (0.15 + 0.85 * math.exp(-2 * z))  # rare positives, steep
        if i >= 10_000:
            probs.append(model.predict_proba_one({"z": z})[True])
            labels.append(int(y))
        model.learn_one({"z": z}, y)
    ece = expected_calibration_error(probs, labels, 15)
    assert ece is not None and ece < 0.05


def test_a_reversed_relation_is_detected_as_drift_and_learned_again() -> None:
    rng, model = random.Random(9), ChurnModel()
    for i in range(6000):
        x = {"f": rng.uniform(-1, 1)}
        flip = i >= 3000
        model.learn_one(x, (x["f"] > 0) != flip)
        if i == 2999:
            assert model.n_drifts == 0 or model.n_drifts < 3
            before = model.n_drifts
    assert model.n_drifts > before
    assert model.predict_proba_one({"f": -0.8})[True] > 0.5


def test_models_pickle_and_score_the_same_after() -> None:
    model, value = ChurnModel(), ValueModel()
    for i in range(200):
        x = {**X, "recency_days": float(i % 30)}
        model.learn_one(x, i % 30 > 20)
        value.learn_one(x, float(i % 7))
    x = {**X, "recency_days": 25.0}
    again = pickle.loads(pickle.dumps(Scorers(churn=model, value=value)))
    assert again.churn is not None and again.value is not None
    assert again.churn.predict_proba_one(x) == model.predict_proba_one(x)
    assert again.value.predict_one(x) == value.predict_one(x)
    assert again.versions == {"churn": "churn-200", "value": "value-200"}


def test_roc_auc_reference_matches_a_brute_force_count() -> None:
    rng = random.Random(1)
    scores = [rng.choice([0.1, 0.2, 0.5, 0.9]) for _ in range(200)]
    labels = [int(rng.random() < s) for s in scores]
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    brute = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))
    assert abs((roc_auc(scores, labels) or 0) - brute) < 1e-12


def test_the_fast_linear_scoring_equals_rivers_own_pipeline() -> None:
    rng, model, value = random.Random(2), ChurnModel(), ValueModel()
    for _ in range(500):
        x = {**X, "recency_days": rng.uniform(0, 30), "spend": rng.uniform(0, 5)}
        model.learn_one(x, rng.random() < x["recency_days"] / 30)
        value.learn_one(x, x["spend"] * 3)
    x = {**X, "recency_days": 12.0, "spend": 1.5}
    river_raw = model._clf.predict_proba_one(x)[True]
    platt = model._platt.predict_proba_one({"z": math.log(river_raw / (1 - river_raw))})[True]
    assert abs(model.predict_proba_one(x)[True] - platt) < 1e-9
    river_value = math.expm1(min(value._reg.predict_one(x), value.max_log_y))
    assert abs(value.predict_one(x) - river_value) < 1e-9 * max(1.0, river_value)


def test_the_value_estimate_stays_within_the_labels_seen() -> None:
    value = ValueModel()
    for i in range(300):
        value.learn_one({**X, "spend": float(i % 3)}, 50.0 * (i % 3))
    assert 0.0 <= value.predict_one({**X, "spend": 1e6}) <= 100.0 + 1e-9  # an extreme profile
