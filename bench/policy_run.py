"""The worker's decisions in the closed loop over several simulated worlds: actions sent,
withdrawn, contact-policy violations found by the independent checker, and the rule's uplift
measured against the loop's control group (see :mod:`app.sim.policy_run`).

    python -m bench.policy_run --seeds 1 2 3 4 5 --users 2000 --days 90

Writes bench/results/policy_run.json and prints one line per seed and the means.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import orjson

from app.sim.policy_run import run_worker_policy
from app.sim.world import WorldConfig

ROOT = Path(__file__).resolve().parents[1]

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/policy_run.json")
    args = ap.parse_args()
    runs = {}
    for seed in args.seeds:
        runs[str(seed)] = run_worker_policy(WorldConfig(days=args.days, users=args.users, seed=seed))
        print(seed, orjson.dumps(runs[str(seed)]).decode(), flush=True)
    means = {
        k: round(statistics.fmean(float(r[k]) for r in runs.values()), 5)
        for k in (
            "policy.actions",
            "policy.cancelled",
            "policy.violations",
            "policy.rule_uplift",
            "policy.rule_uplift_first",
        )
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(
        orjson.dumps({"args": vars(args) | {"out": str(args.out)}, "runs": runs, "means": means})
    )
    print("means", means)
