"""Churn and value figures of ``nba evaluate``: prequential scores against batch references.

The online side is the worker's own code: :mod:`models.user_step` takes the snapshots and
labels them as the watermark moves; the evaluator only records them (:meth:`ChurnRecorder.add`)
and trains the models the way the learner does. The reference side is written independently:

* labels are derived again from the applied activity times by the horizon rule (no activity in
  ``(t, t + H]``); ``churn.label_agreement`` is the share of snapshots where both derivations agree;
* ``churn.batch_auc``: a scikit-learn logistic regression (standardised features) retrained at
  each simulated day on every label final before that day (its snapshot's ``t + H`` passed: the
  labels the online learner has had by then), scoring that day's snapshots;
  ``churn.auc`` is the online model's score at snapshot time on the same snapshots;
* ``churn.rule_auc``: days since last activity at snapshot time, on the same snapshots;
* ``churn.ece``: expected calibration error over 15 equal-mass bins of the online scores, on the
  snapshots of the last 30 labelled days; ``churn.reliability`` holds the bins for the plot.

Clock: event time (snapshot times, activity times).
"""

from __future__ import annotations

import array
import bisect
from collections import defaultdict
from typing import Any

from models.churn import CHURN_FEATURES, Labelled, expected_calibration_error, reliability
from models.metrics import roc_auc
from schemas.vocabulary import DAY


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


class ChurnRecorder:
    """Everything the churn and value figures need, recorded as the stream is evaluated."""

    def __init__(self, horizon_s: float) -> None:
        self.horizon_s = horizon_s
        self.users: list[str] = []
        self.t: list[float] = []
        self.y: list[int] = []
        self.score: list[float] = []
        self.recency: list[float] = []
        self.x = array.array("f")
        self.activity: dict[str, list[float]] = defaultdict(list)
        """canonical -> applied event times (as applied: appended, sorted at report time)."""
        self.value: list[tuple[float, float, float]] = []
        """(t, label, prediction at t) for value snapshots."""
        self.value_sum = 0.0
        self.value_baseline: list[float] = []
        """The running mean of the value labels known so far, at each value label."""

    def activity_at(self, canonical: str, ts: float) -> None:
        self.activity[canonical].append(ts)

    def add(self, item: Labelled) -> None:
        if item.model == "value":
            n = len(self.value)
            self.value_baseline.append(self.value_sum / n if n else 0.0)
            self.value.append((item.t, item.y, item.score))
            self.value_sum += item.y
            return
        self.users.append(item.user)
        self.t.append(item.t)
        self.y.append(int(item.y))
        self.score.append(item.score)
        self.recency.append(item.x["recency_days"])
        self.x.extend(item.x[f] for f in CHURN_FEATURES)

    # -- the independent reference ----------------------------------------------------------
    def reference_labels(self, final: dict[str, str]) -> list[int]:
        """Labels by the horizon rule from the activity times.

        ``final`` maps a canonical id to the profile its history ended in (merges)."""
        times: dict[str, list[float]] = defaultdict(list)
        for canonical, ts in self.activity.items():
            times[final.get(canonical, canonical)].extend(ts)
        for ts in times.values():
            ts.sort()
        labels = []
        for user, t in zip(self.users, self.t, strict=True):
            ts = times.get(final.get(user, user), [])
            i = bisect.bisect_right(ts, t)
            labels.append(0 if i < len(ts) and ts[i] <= t + self.horizon_s else 1)
        return labels

    def report(self, final: dict[str, str], truth_churn: dict[str, float | None] | None) -> dict[str, Any]:
        import numpy as np

        out: dict[str, Any] = {
            "churn.horizon_days": self.horizon_s / DAY,
            "churn.snapshots": len(self.y),
            "churn.positive_rate": _r(sum(self.y) / len(self.y)) if self.y else None,
        }
        if not self.y:
            return out
        ref = self.reference_labels(final)
        out["churn.label_agreement"] = _r(sum(a == b for a, b in zip(ref, self.y, strict=True)) / len(ref))
        scored = [i for i, s in enumerate(self.score) if s >= 0]
        out["churn.scored_snapshots"] = len(scored)
        out["churn.auc_all"] = _r(roc_auc([self.score[i] for i in scored], [self.y[i] for i in scored]))
        x = np.frombuffer(self.x, dtype=np.float32).reshape(len(self.y), len(CHURN_FEATURES))
        t = np.asarray(self.t)
        batch = self._batch_scores(x, np.asarray(ref), t + self.horizon_s, t)
        same = [i for i in scored if batch[i] is not None]
        ys = [self.y[i] for i in same]
        out["churn.days_compared"] = len({int(self.t[i] // DAY) for i in same})
        out["churn.auc"] = _r(roc_auc([self.score[i] for i in same], ys))
        out["churn.batch_auc"] = _r(roc_auc([float(batch[i]) for i in same], [ref[i] for i in same]))  # type: ignore[arg-type]
        out["churn.rule_auc"] = _r(roc_auc([self.recency[i] for i in same], ys))
        if out["churn.auc"] is not None and out["churn.batch_auc"] is not None:
            out["churn.auc_minus_batch"] = _r(out["churn.auc"] - out["churn.batch_auc"])
        last_day = max(self.t[i] for i in scored) if scored else 0.0
        recent = [i for i in scored if self.t[i] > last_day - 30 * DAY]
        probs, labels = [self.score[i] for i in recent], [self.y[i] for i in recent]
        out["churn.ece"] = _r(expected_calibration_error(probs, labels, 15))
        out["churn.reliability"] = reliability(probs, labels, 15)
        out["churn.true_auc"] = out["churn.true_rule_auc"] = None
        if truth_churn is not None:
            rows = []  # (online score, rule score, true label) where the simulator knows the user
            for i in same:
                user = final.get(self.users[i], self.users[i])
                if user.startswith("u:") and user[2:] in truth_churn:
                    at = truth_churn[user[2:]]
                    truth = int(at is not None and at <= self.t[i] + self.horizon_s)
                    rows.append((self.score[i], self.recency[i], truth))
            out["churn.true_auc"] = _r(roc_auc([r[0] for r in rows], [r[2] for r in rows]))
            out["churn.true_rule_auc"] = _r(roc_auc([r[1] for r in rows], [r[2] for r in rows]))
        out.update(self._value_report())
        return out

    def _batch_scores(self, x: Any, ref: Any, known: Any, t: Any) -> list[float | None]:
        """Each snapshot's score from a batch model fitted on the labels final before its day."""
        import numpy as np
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        scores: list[float | None] = [None] * len(ref)
        days = np.floor(t / DAY).astype(np.int64)
        for day in np.unique(days):
            train = known < day * DAY
            if train.sum() < 200 or len(np.unique(ref[train])) < 2:
                continue
            model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=300))
            model.fit(x[train], ref[train])
            rows = np.flatnonzero(days == day)
            for i, p in zip(rows, model.predict_proba(x[rows])[:, 1], strict=True):
                scores[int(i)] = float(p)
        return scores

    def _value_report(self) -> dict[str, Any]:
        scored = [(y, p, b) for (_, y, p), b in zip(self.value, self.value_baseline, strict=True) if p >= 0]
        if not scored:
            return {"value.snapshots": len(self.value), "value.mae": None}
        return {
            "value.snapshots": len(self.value),
            "value.mae": _r(sum(abs(y - p) for y, p, _ in scored) / len(scored)),
            "value.mae_running_mean": _r(sum(abs(y - b) for y, _, b in scored) / len(scored)),
            "value.mean_label": _r(sum(y for y, _, _ in scored) / len(scored)),
        }
