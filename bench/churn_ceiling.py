"""How far above the recency rule can any churn model get on a simulated world?

Issue 5 asks for a churn model at least 0.05 ROC AUC above the best single-feature rule (days
since last activity). This study measures what the simulated world allows, with batch models
that may look at things no online model has:

* ``observable``: every churn feature the worker computes (:data:`models.churn.CHURN_FEATURES`);
* ``+persona``: the same, plus the user's simulated persona (the truth, one-hot);
* ``+latent``: the same, plus whether the user had already churned at snapshot time (the
  simulator's latent churn date; no real system can know it);
* ``latent_then_recency``: users already gone first, then by days since last activity.

The snapshots and their horizon labels are the worker's own (``nba evaluate``'s
:class:`lab.evaluate.Evaluation`); the models are scikit-learn's logistic regression
(standardised) and histogram gradient boosting, fitted on the labels final before the test days
(``t + H`` before the split) and scored on the snapshots taken on or after the split. The online
model's prequential scores on the same test snapshots are reported beside them.

    python -m bench.churn_ceiling --seeds 1 2 3 4 5 --users 2000

Writes bench/results/churn_ceiling.json and prints a table (mean and spread over the seeds).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import orjson

from app.rules import setup
from app.settings import Settings
from lab.evaluate import EvalConfig, Evaluation
from lab.logs import read_ordered
from lab.sim.output import write_jsonl
from lab.sim.world import World, WorldConfig
from models.churn import CHURN_FEATURES
from schemas.validate import ValidationPolicy

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400.0
CHANNELS = frozenset(("app", "web", "wechat", "weibo", "douyin", "zhihu", "email", "sms"))


def one_world(seed: int, users: int, days: int, split_day: float) -> dict[str, float]:
    """The ceiling figures of one simulated world."""
    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    with tempfile.TemporaryDirectory(prefix="nba-ceiling-") as tmp:
        path = Path(tmp) / "world.jsonl"
        write_jsonl(World(WorldConfig(days=days, users=users, seed=seed)), path)
        truth = orjson.loads(path.with_name(path.name + ".truth.json").read_bytes())
        ev = Evaluation(EvalConfig(), ValidationPolicy(channels=CHANNELS), truth, setup(Settings()))
        for rec in read_ordered(path, None):
            ev.feed(rec.topic, rec.key, rec.value)
    r, horizon = ev.recorder, ev.step.labels.horizon_s
    personas = sorted({u["persona"] for u in truth["users"].values()})
    churn_at = ev.truth_churn or {}
    rows = [
        i for i, u in enumerate(r.users) if u.startswith("u:") and u[2:] in truth["users"]
    ]  # snapshots of logged-in users (the truth knows them; anonymous profiles are left out)
    x = np.frombuffer(r.x, dtype=np.float32).reshape(len(r.y), len(CHURN_FEATURES))[rows]
    y = np.asarray(r.y)[rows]
    t = np.asarray(r.t)[rows]
    day = (t - min(r.t)) / DAY
    ids = [r.users[i][2:] for i in rows]
    persona = np.array([[truth["users"][u]["persona"] == p for p in personas] for u in ids], dtype=float)
    gone = np.array([churn_at[u] is not None and churn_at[u] <= ts for u, ts in zip(ids, t, strict=True)])
    recency = x[:, CHURN_FEATURES.index("recency_days")]
    online = np.asarray(r.score)[rows]
    train, test = t + horizon < min(r.t) + split_day * DAY, day >= split_day
    test_scored = test & (online >= 0)

    def auc(score: Any, mask: Any = test) -> float:
        return float(roc_auc_score(y[mask], score[mask]))

    out = {
        "test_snapshots": float(test.sum()),
        "positive_rate": float(y[test].mean()),
        "gone_share_of_churned": float(gone[test & (y == 1)].mean()),
        "rule": auc(recency),
        "online": auc(online, test_scored),
        "rule_on_online_rows": auc(recency, test_scored),
        "latent_then_recency": auc(gone * 1000.0 + recency),
    }
    for name, features in (
        ("observable", x),
        ("observable+persona", np.column_stack([x, persona])),
        ("observable+persona+latent", np.column_stack([x, persona, gone])),
    ):
        lr = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000)).fit(features[train], y[train])
        gbm = HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, max_depth=4, min_samples_leaf=100, random_state=seed
        ).fit(features[train], y[train])
        out[f"{name}.lr"] = auc(lr.predict_proba(features)[:, 1])
        out[f"{name}.gbm"] = auc(gbm.predict_proba(features)[:, 1])
    return out


def summarize(per_seed: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    keys = next(iter(per_seed.values()))
    return {
        k: {
            "mean": round(statistics.fmean(s[k] for s in per_seed.values()), 4),
            "stdev": round(statistics.stdev(s[k] for s in per_seed.values()), 4)
            if len(per_seed) > 1
            else 0.0,
            "minus_rule": round(statistics.fmean(s[k] - s["rule"] for s in per_seed.values()), 4),
        }
        for k in keys
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--split-day", type=float, default=45.0, help="First test day (world day).")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/churn_ceiling.json")
    args = ap.parse_args()
    per_seed = {str(s): one_world(s, args.users, args.days, args.split_day) for s in args.seeds}
    summary = summarize(per_seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(
        orjson.dumps(
            {"args": vars(args) | {"out": str(args.out)}, "summary": summary, "per_seed": per_seed},
            option=orjson.OPT_INDENT_2,
        )
    )
    width = max(len(k) for k in summary)
    print(f"{'figure':{width}}  mean     stdev   minus rule")
    for k, v in summary.items():
        print(f"{k:{width}}  {v['mean']:<8} {v['stdev']:<7} {v['minus_rule']}")
