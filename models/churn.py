"""Churn risk and 30-day value: features, delayed labels in event time, and the online models.

Promises
--------
* Labels come from the stream itself, in event time: a user scored at ``t`` is **churned** if
  no activity comes in ``(t, t + H]``. A feature snapshot taken at ``t`` is kept, by value, with
  the scores made at ``t``; it is labelled **retained** as soon as an event in ``(t, t + H]`` is
  applied, and **churned** once the watermark passes ``t + H`` without one. Labels go to the
  learner when the watermark passes ``t + H`` (see :func:`on_watermark`). The value label is
  the spend in ``(t, t + V]``, known once the watermark passes ``t + V``. Out-of-order events
  count by their own time; nothing reads ahead of the watermark.
* Pending snapshots live inside the profile (so they are stored, recovered and erased with it),
  at most one per ``sample_every_s`` of event time and at most ``max_pending`` per user (the
  oldest is dropped first if the bound is ever reached).
* :class:`ChurnModel` follows River's classifier API; its probability is calibrated online
  (Platt scaling learned on each label *before* the classifier learns it), a River ``ADWIN``
  watches the error stream for drift, and :meth:`ChurnModel.explain_one` names the features
  that pushed the risk up (weight x scaled value). :class:`ValueModel` follows River's
  regressor API. Both are seeded (they draw nothing at random) and pickle.
* :class:`Prequential` keeps a rolling window of (prediction, label) pairs and computes exact
  ROC AUC, log loss and expected calibration error from them.

Clock: event time throughout (snapshot ``t``, the partition watermark).
"""

from __future__ import annotations

import array
import base64
import bisect
import heapq
import math
from collections import deque
from dataclasses import dataclass
from typing import Any

from river import base, compose, drift, linear_model, optim, preprocessing

from models import decay
from models.features import FEATURES, describe_direction, profile_features
from models.metrics import roc_auc
from models.profile import (
    MAX_PENDING,
    PENDING,
    RETAINED,
    SENT,
    SNAP_LABEL,
    SNAP_SCORE,
    SNAP_SPEND,
    SNAP_T,
    SNAP_VALUE,
    SNAP_X,
    Profile,
)
from schemas.vocabulary import DAY

CHURN_FEATURES: tuple[str, ...] = (
    *FEATURES,
    "rhythm_days",
    "overdue",
    "tenure_days",
    "active_days_14d",
    "trend",
    "recent_completion",
)
"""The profile features plus the ones about a user's rhythm that churn needs."""

EXTRA_LABELS: dict[str, tuple[str, str]] = {
    "rhythm_days": ("visits rarely", "visits often"),
    "overdue": ("overdue against their own rhythm", "on their usual rhythm"),
    "tenure_days": ("long-time user", "new user"),
    "active_days_14d": ("many active days lately", "few active days lately"),
    "trend": ("activity rising", "activity falling"),
    "recent_completion": ("finishes what they watch lately", "stopped finishing what they watch"),
}


def describe(feature: str, high: bool) -> str:
    """Readable words for a churn feature being high or low.

    >>> describe("overdue", True), describe("spend", False)
    ('overdue against their own rhythm', 'low spend')
    """
    if feature in EXTRA_LABELS:
        up, down = EXTRA_LABELS[feature]
        return up if high else down
    return describe_direction(feature, high)


def churn_features(profile: Profile, now: float) -> dict[str, float]:
    """:func:`models.features.profile_features` plus rhythm features, at event time ``now``.

    >>> p = Profile("u:1", first_seen=0.0, last_seen=4 * DAY, events=3, days=[0, 2, 4])
    >>> x = churn_features(p, 10 * DAY)
    >>> x["rhythm_days"], x["overdue"], x["active_days_14d"], tuple(x) == CHURN_FEATURES
    (2.0, 3.0, 3.0, True)
    """
    x = profile_features(profile, now)
    days = profile.days
    rhythm = (days[-1] - days[0]) / (len(days) - 1) if len(days) >= 2 else 7.0
    today = int(now // DAY)
    x["rhythm_days"] = rhythm
    x["overdue"] = min(x["recency_days"] / max(rhythm, 1.0), 30.0)
    x["tenure_days"] = math.log1p(max(0.0, now - profile.first_seen) / DAY) if profile.first_seen else 0.0
    x["active_days_14d"] = float(len(days) - bisect.bisect_left(days, today - 13))
    x["trend"] = math.expm1(x["events_7d"]) * 30 / 7 / (1.0 + math.expm1(x["events_30d"]))
    progress, views = profile.decayed.get("progress"), profile.decayed.get("t:view")
    seen = decay.value_at(views, now, 1) if views else 0.0
    x["recent_completion"] = decay.value_at(progress, now, 1) / seen if progress and seen > 1e-9 else 0.0
    return x


# -- pending snapshots ------------------------------------------------------------------------
# A snapshot's layout (SNAP_* slots, PENDING/RETAINED/SENT labels) is defined with the profile
# that stores it, in models.profile.


@dataclass(frozen=True, slots=True)
class LabelRules:
    horizon_s: float = 14 * DAY
    """H: churned at t if no activity in (t, t + H]."""
    value_horizon_s: float = 30 * DAY
    """V: the value label is the spend in (t, t + V]."""
    sample_every_s: float = 3 * DAY
    """At most one pending snapshot per user per this much event time."""
    max_pending: int = MAX_PENDING
    active_window_s: float = 30 * DAY
    """Users silent for longer are no longer scored on the daily tick."""


@dataclass(frozen=True, slots=True)
class Labelled:
    """A snapshot whose label is known: what the learner learns and the evaluator scores."""

    model: str
    """``churn`` or ``value``."""
    user: str
    """The canonical id of the profile that holds the snapshot when it is labelled."""
    t: float
    x: dict[str, float]
    y: float
    score: float
    """The prediction made at ``t`` (before the label existed)."""


def snapshot(
    profile: Profile, t: float, x: dict[str, float], score: float, value: float, rules: LabelRules
) -> bool:
    """Keep ``x`` (taken at ``t``) pending, if the sampling policy allows; ``True`` if kept."""
    pending = profile.pending
    if pending and t - pending[-1][SNAP_T] < rules.sample_every_s:
        return False
    if pending and t < pending[-1][SNAP_T]:
        return False  # snapshots are kept in time order; an out-of-order score is not sampled
    packed = base64.b64encode(array.array("f", [x[f] for f in CHURN_FEATURES]).tobytes()).decode()
    pending.append([t, round(score, 5), round(value, 3), 0.0, PENDING, packed])
    if len(pending) > rules.max_pending:
        del pending[0]
    return True


def _x(snap: list[Any]) -> dict[str, float]:
    values = array.array("f", base64.b64decode(snap[SNAP_X]))
    return dict(zip(CHURN_FEATURES, values.tolist(), strict=True))


def on_activity(profile: Profile, ts: float, spend: float, rules: LabelRules) -> None:
    """An event at ``ts`` was applied: label the snapshots it retains, add its spend to theirs."""
    for snap in profile.pending:
        if snap[SNAP_T] < ts <= snap[SNAP_T] + rules.value_horizon_s:
            snap[SNAP_SPEND] += spend
        if snap[SNAP_LABEL] == PENDING and snap[SNAP_T] < ts <= snap[SNAP_T] + rules.horizon_s:
            snap[SNAP_LABEL] = RETAINED


def on_watermark(profile: Profile, watermark: float, rules: LabelRules) -> list[Labelled]:
    """The watermark reached ``watermark``: label the snapshots whose horizons it passed.

    A churn label is handed out only at ``t + H`` even when activity settled it earlier, so the
    learner receives labels in snapshot-time order: handing out the retained ones first would
    teach the model to tell recent snapshots from old ones in a population that changes.
    """
    out = []
    keep = []
    for snap in profile.pending:
        if snap[SNAP_LABEL] != SENT and snap[SNAP_T] + rules.horizon_s < watermark:
            y = 0.0 if snap[SNAP_LABEL] == RETAINED else 1.0
            snap[SNAP_LABEL] = SENT
            out.append(Labelled("churn", profile.canonical, snap[SNAP_T], _x(snap), y, snap[SNAP_SCORE]))
        if snap[SNAP_T] + rules.value_horizon_s < watermark:
            out.append(
                Labelled(
                    "value", profile.canonical, snap[SNAP_T], _x(snap), snap[SNAP_SPEND], snap[SNAP_VALUE]
                )
            )
        else:
            keep.append(snap)
    profile.pending = keep
    return out


def next_label_time(profile: Profile, rules: LabelRules) -> float | None:
    """The first event time at which the watermark labels a pending snapshot (one second past
    its horizon: the horizon itself is inside the window)."""
    times = [
        s[SNAP_T] + (rules.horizon_s if s[SNAP_LABEL] == PENDING else rules.value_horizon_s)
        for s in profile.pending
    ]
    return min(times) + 1.0 if times else None


# -- the models -------------------------------------------------------------------------------
def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    """River's sigmoid (clamped at +-30)."""
    if z < -30:
        return 0.0
    if z > 30:
        return 1.0
    return 1.0 / (1.0 + math.exp(-z))


def _linear_terms(pipeline: Any) -> tuple[list[tuple[str, float, float, float]], float] | None:
    """(feature, mean, 1/std, weight) and the intercept of a ``StandardScaler | linear`` pipeline,
    read from River's state so that scoring one snapshot many times costs one dot product
    (``None`` for any other model)."""
    steps = list(pipeline.steps.values()) if isinstance(pipeline, compose.Pipeline) else []
    if len(steps) != 2 or not isinstance(steps[0], preprocessing.StandardScaler):
        return None
    scaler, lin = steps
    if not isinstance(lin, linear_model.LogisticRegression | linear_model.LinearRegression):
        return None
    weights = lin._weights
    terms = []
    for f, mean in scaler.means.items():
        var = scaler.vars[f]
        terms.append((f, mean, 1.0 / var**0.5 if var else 0.0, weights.get(f, 0.0)))
    return terms, float(lin.intercept)


def default_classifier() -> Any:
    """Scaled logistic regression (the default churn classifier)."""
    return compose.Pipeline(
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(optimizer=optim.SGD(0.002), l2=1e-4),
    )


class ChurnModel(base.Classifier):
    """Online churn classifier with online Platt calibration and drift detection.

    Parameters
    ----------
    classifier
        A River classifier (``None``: :func:`default_classifier`). It is cloned, never mutated.
    calibration_lr
        Learning rate of the Platt scaler (a logistic regression on the classifier's logit).
    drift_delta
        ``ADWIN``'s confidence on the squared error of the calibrated probability.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(0)
    >>> model = ChurnModel()
    >>> for _ in range(3000):
    ...     x = {"recency_days": rng.uniform(0, 30), "noise": rng.random()}
    ...     model.learn_one(x, rng.random() < x["recency_days"] / 30)
    >>> model.predict_proba_one({"recency_days": 28.0, "noise": 0.5})[True] > 0.7
    True
    >>> model.explain_one({"recency_days": 28.0, "noise": 0.5})[0][0]
    'recency_days'
    """

    def __init__(
        self,
        classifier: base.Classifier | None = None,
        calibration_lr: float = 0.02,
        drift_delta: float = 0.002,
    ) -> None:
        self.classifier = classifier
        self.calibration_lr = calibration_lr
        self.drift_delta = drift_delta
        self._clf: Any = classifier.clone() if classifier is not None else default_classifier()
        self._platt: Any = linear_model.LogisticRegression(optimizer=optim.SGD(calibration_lr), l2=0.0)
        self._drift = drift.ADWIN(delta=drift_delta)
        self.n_learned = 0
        self.n_drifts = 0
        self.drift_detected = False
        """Whether the last :meth:`learn_one` saw a drift."""
        self._fast: tuple[list[tuple[str, float, float, float]], float] | None = None

    def _terms(self) -> tuple[list[tuple[str, float, float, float]], float] | None:
        if self._fast is None:
            self._fast = _linear_terms(self._clf)
        return self._fast

    def _contributions(self, x: dict[str, float]) -> dict[str, float] | None:
        """weight x scaled value per feature, for the default (scaled linear) classifier."""
        lin = self._terms()
        if lin is None:
            return None
        return {f: w * (x.get(f, m) - m) * inv for f, m, inv, w in lin[0] if f in x}

    def _raw(self, x: dict[str, float]) -> float:
        contrib = self._contributions(x)
        if contrib is not None:
            lin = self._terms()
            assert lin is not None
            return _sigmoid(sum(contrib.values()) + lin[1])
        return float(self._clf.predict_proba_one(x).get(True, 0.0))

    def _calibrated(self, raw: float) -> float:
        if not self.n_learned:
            return raw
        return _sigmoid(self._platt._weights.get("z", 0.0) * _logit(raw) + self._platt.intercept)

    def predict_proba_one(self, x: dict[str, Any]) -> dict[bool, float]:  # type: ignore[override]
        p = self._calibrated(self._raw(x))
        return {False: 1.0 - p, True: p}

    def learn_one(self, x: dict[str, Any], y: bool) -> None:  # type: ignore[override]
        y = bool(y)
        raw = self._raw(x)
        p = self._calibrated(raw)
        self._fast = None  # the classifier is about to change
        self._platt.learn_one({"z": _logit(raw)}, y)  # calibrate on a label the classifier has not seen
        self._drift.update((float(y) - p) ** 2)
        self.drift_detected = bool(self._drift.drift_detected)
        self.n_drifts += self.drift_detected
        self._clf.learn_one(x, y)
        self.n_learned += 1

    def explain_one(self, x: dict[str, float], top: int = 3) -> list[tuple[str, float]]:
        """The features that push the risk up most: (feature, weight x scaled value), largest first.

        Exact for the default (scaled linear) classifier; for another classifier, the change in
        risk when the feature is set to its mean (a documented approximation).
        """
        contrib = self._contributions(x)
        if contrib is None:
            base_p = self._raw(x)
            means = self._means()
            contrib = {f: base_p - self._raw({**x, f: means.get(f, 0.0)}) for f in x}
        return _top(contrib, top)

    def _means(self) -> dict[str, float]:
        steps = list(self._clf.steps.values()) if isinstance(self._clf, compose.Pipeline) else []
        return dict(getattr(steps[0], "means", {})) if steps else {}

    def reasons(self, x: dict[str, float], top: int = 3) -> list[str]:
        """:meth:`explain_one` in a marketer's words, e.g. ``["long inactive", "few active days lately"]``."""
        means = self._means()
        return [describe(f, x[f] > means.get(f, 0.0)) for f, _ in self.explain_one(x, top)]

    def assess(self, x: dict[str, float], top: int = 3) -> tuple[float, list[str]]:
        """The calibrated risk and its reasons in words, in one pass (what the worker stores)."""
        lin = self._terms()
        contrib = self._contributions(x)
        if lin is None or contrib is None:
            return self.predict_proba_one(x)[True], self.reasons(x, top)
        p = self._calibrated(_sigmoid(sum(contrib.values()) + lin[1]))
        means = {f: m for f, m, _, _ in lin[0]}
        return p, [describe(f, x[f] > means.get(f, 0.0)) for f, _ in _top(contrib, top)]


def _top(contrib: dict[str, float], top: int) -> list[tuple[str, float]]:
    """The ``top`` largest positive contributions, largest first (ties: by feature name)."""
    best = heapq.nlargest(top, [(c, f) for f, c in contrib.items() if c > 0])
    return [(f, round(c, 4)) for c, f in best]


class ValueModel(base.Regressor):
    """Expected spend over the next 30 days (in the base currency), learned online.

    Learns ``log1p(spend)`` with a scaled linear regression (gradients clipped), so a few large
    orders do not dominate; predicts its ``expm1``, never below zero nor above the largest label
    learned so far (an online linear model extrapolates wildly on unusual profiles otherwise:
    measured, the mean absolute error of the unbounded version was in the millions).

    Examples
    --------
    >>> model = ValueModel()
    >>> for i in range(2000):
    ...     model.learn_one({"spend": float(i % 5)}, 10.0 * (i % 5))
    >>> model.predict_one({"spend": 4.0}) > model.predict_one({"spend": 0.0})
    True
    """

    def __init__(self, lr: float = 0.005) -> None:
        self.lr = lr
        self._reg: Any = compose.Pipeline(
            preprocessing.StandardScaler(),
            linear_model.LinearRegression(optimizer=optim.SGD(lr), l2=1e-4, clip_gradient=1.0),
        )
        self.n_learned = 0
        self.max_log_y = 0.0
        self._fast: tuple[list[tuple[str, float, float, float]], float] | None = None

    def predict_one(self, x: dict[str, Any]) -> float:  # type: ignore[override]
        if self._fast is None:
            self._fast = _linear_terms(self._reg)
        assert self._fast is not None
        terms, intercept = self._fast
        raw = intercept + sum(w * (x[f] - m) * inv for f, m, inv, w in terms if f in x)
        return max(0.0, math.expm1(min(raw, self.max_log_y)))

    def learn_one(self, x: dict[str, Any], y: float) -> None:  # type: ignore[override]
        self._fast = None
        target = math.log1p(max(0.0, float(y)))
        self.max_log_y = max(self.max_log_y, target)
        self._reg.learn_one(x, target)
        self.n_learned += 1


class Prequential:
    """A rolling window of (probability, label): exact ROC AUC, log loss and calibration error.

    >>> q = Prequential(window=4)
    >>> for p, y in [(0.9, 1), (0.8, 1), (0.3, 0), (0.2, 0)]:
    ...     q.add(p, y)
    >>> q.auc(), round(q.log_loss(), 3)
    (1.0, 0.227)
    """

    def __init__(self, window: int = 10_000) -> None:
        self.window = window
        self.pairs: deque[tuple[float, int]] = deque(maxlen=window)

    def add(self, p: float, y: float) -> None:
        self.pairs.append((p, int(y)))

    def auc(self) -> float | None:
        return roc_auc([p for p, _ in self.pairs], [y for _, y in self.pairs])

    def log_loss(self) -> float | None:
        if not self.pairs:
            return None
        eps = 1e-9
        return -sum(math.log(max(p, eps)) if y else math.log(max(1 - p, eps)) for p, y in self.pairs) / len(
            self.pairs
        )

    def ece(self, bins: int = 15) -> float | None:
        return expected_calibration_error([p for p, _ in self.pairs], [y for _, y in self.pairs], bins)


def reliability(probs: list[float], labels: list[int], bins: int = 15) -> list[tuple[float, float, int]]:
    """Equal-mass bins: (mean predicted, observed rate, count) per bin, lowest first.

    >>> reliability([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], bins=2)
    [(0.15, 0.0, 2), (0.85, 1.0, 2)]
    """
    pairs = sorted(zip(probs, labels, strict=True))
    n = len(pairs)
    out = []
    for b in range(bins):
        chunk = pairs[b * n // bins : (b + 1) * n // bins]
        if chunk:
            out.append(
                (
                    round(sum(p for p, _ in chunk) / len(chunk), 6),
                    round(sum(y for _, y in chunk) / len(chunk), 6),
                    len(chunk),
                )
            )
    return out


def expected_calibration_error(probs: list[float], labels: list[int], bins: int = 15) -> float | None:
    """Expected calibration error over ``bins`` equal-mass bins (weighted mean |predicted - observed|).

    >>> expected_calibration_error([0.1, 0.2, 0.8, 0.9], [0, 0, 1, 1], bins=2)
    0.15
    """
    if not probs:
        return None
    n = len(probs)
    return round(sum(abs(p - o) * c for p, o, c in reliability(probs, labels, bins)) / n, 6)
