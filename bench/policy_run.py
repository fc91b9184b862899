"""The learned policy in the closed loop, against the oracle, a random policy and the foundation rule.

    python -m bench.policy_run --seeds 1 2 3 4 5 --users 2000 --days 90 --coverage-seeds $(seq 101 120)

or in two processes, merged afterwards:

    python -m bench.policy_run --seeds 1 2 3 --coverage-seeds $(seq 101 110) --out /tmp/a.json
    python -m bench.policy_run --seeds 4 5 --coverage-seeds $(seq 111 120) --out /tmp/b.json
    python -m bench.policy_run --merge /tmp/a.json /tmp/b.json

Per seed (a simulated world, 90 days), with the worker's own step deciding (see
:mod:`lab.sim.policy_run`):

* the learned policy over the shipped catalog (``app/actions.yaml``), control group 10%:
  ``policy.uplift``, ``policy.oracle_uplift``, ``policy.random_uplift``, ``policy.rule_uplift``
  (expected incremental conversions of each at the learned policy's decision points, from the
  simulator's true response model), ``policy.violations`` (independent checker);
* the foundation rule in the catalog's terms (:func:`lab.sim.policy_run.rule_catalog`) run in its
  own closed loop on the same world: its measured conversion per decision, against the inverse
  propensity and doubly robust estimates of the same rule from the learned policy's log
  (``ope.dr_error``: each seed's relative error, averaged; ``ope.dr_error_of_means``: the
  estimate averaged over seeds against the measured value averaged), split where the learned
  policy scores the rule's choice first (``ope.rule_dr_on_top``) and where it does not
  (``ope.rule_dr_below``: the log holds the rule's choice there only by exploration), with the
  mean importance weight of the rule's choice (``ope.weight_mean``, 1 in expectation);
* over the ``--coverage-seeds`` worlds (``--coverage-users`` users each): whether the control
  group's 95% interval of the uplift covers the simulator's truth, on each user's first decision
  (the headline), as a plain difference, and over all decisions
  (:func:`lab.sim.policy_run.control_estimate`).

Margins (learned minus rule, learned minus random) get a 95% interval over seeds (t, n-1).
Writes bench/results/policy_run.json.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path
from typing import Any

import orjson

from app.action_catalog import load_file
from app.rules import setup
from app.settings import Settings
from lab.sim.policy_run import control_estimate, offpolicy_log, rule_catalog, run_policy
from lab.sim.world import WorldConfig
from models.offpolicy import Logged, dr, ips

ROOT = Path(__file__).resolve().parents[1]
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


def one_seed(
    seed: int, users: int, days: int, control_share: float, catalog: Path | None = None
) -> dict[str, Any]:
    actions = load_file(catalog)
    world = WorldConfig(days=days, users=users, seed=seed)
    models = setup(Settings())
    learned = run_policy(world, models, control_share=control_share, actions=actions)
    rule = run_policy(world, models, control_share=0.0, actions=rule_catalog(actions), learn=False)
    # the rule's measured value: conversion per decision it sent, in its own closed loop
    sent = [p for p in rule.policy.points if p.outcome == "sent" and p.decision_id in rule.policy.outcomes]
    measured = statistics.fmean(float(rule.policy.outcomes[p.decision_id]) for p in sent)
    # the same rule estimated from the learned policy's log, at the decisions where it acts
    log, arms, on_top = offpolicy_log(learned.policy)
    acting = [d for d, arm in zip(log, arms, strict=True) if arm is not None]
    targets = {id(d): arm for d, arm in zip(log, arms, strict=True)}

    def target(d: Logged) -> int | None:
        return targets[id(d)]

    est_dr = dr(acting, target)
    # where the learned policy itself scores the rule's choice highest, and where it does not
    # (there the log holds the rule's choice only from exploration)
    top = [d for d, arm, t in zip(log, arms, on_top, strict=True) if arm is not None and t]
    below = [d for d, arm, t in zip(log, arms, on_top, strict=True) if arm is not None and not t]
    return {
        **learned.figures,
        **control_estimate(learned),
        "ope.rule_measured": round(measured, 4),
        "ope.rule_decisions": len(sent),
        "ope.rule_dr": est_dr,
        "ope.rule_ips": ips(acting, target),
        "ope.log_decisions": len(acting),
        # mean importance weight of the rule's choice: 1 in expectation if the propensities are right
        "ope.weight_mean": round(
            statistics.fmean(1 / d.propensity if target(d) == d.chosen else 0.0 for d in acting), 4
        ),
        "ope.rule_dr_on_top": dr(top, target),
        "ope.rule_dr_below": dr(below, target),
        "ope.log_on_top": len(top),
        "ope.picked_below": sum(1 for d in below if target(d) == d.chosen),
        "ope.dr_error": round(abs(est_dr[0] - measured) / measured, 4),
        "rule.violations": rule.figures["policy.violations"],
    }


def margin(runs: list[dict[str, Any]], a: str, b: str) -> dict[str, Any]:
    diffs = [r[a] - r[b] for r in runs]
    mean = statistics.fmean(diffs)
    half = (
        T95.get(len(diffs) - 1, 1.96) * statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else 0.0
    )
    return {"mean": round(mean, 3), "ci95": [round(mean - half, 3), round(mean + half, 3)]}


KEYS = (
    "policy.uplift",
    "policy.oracle_uplift",
    "policy.random_uplift",
    "policy.rule_uplift",
    "policy.oracle_share",
    "policy.value",
    "policy.oracle_value",
    "policy.random_value",
    "policy.oracle_value_share",
    "policy.violations",
    "policy.actions",
    "policy.explored",
    "policy.decision_points",
    "ope.rule_measured",
    "ope.dr_error",
)


def summarize(runs: dict[str, Any], coverage: dict[str, Any]) -> dict[str, Any]:
    """Means over seeds, the margins with their 95% intervals, and the control coverage."""
    values = list(runs.values())
    means: dict[str, Any] = {}
    if values:  # a coverage-only run has none
        means |= {k: round(statistics.fmean(float(r[k]) for r in values), 4) for k in KEYS}
        means["ope.rule_dr"] = round(statistics.fmean(r["ope.rule_dr"][0] for r in values), 4)
        means["ope.rule_ips"] = round(statistics.fmean(r["ope.rule_ips"][0] for r in values), 4)
        # the bar's other reading: the estimate averaged over seeds against the measured value
        # averaged (``ope.dr_error`` is the mean of each seed's own error)
        means["ope.dr_error_of_means"] = round(
            abs(means["ope.rule_dr"] - means["ope.rule_measured"]) / means["ope.rule_measured"], 4
        )
        means["margin.learned_minus_rule"] = margin(values, "policy.uplift", "policy.rule_uplift")
        means["margin.learned_minus_random"] = margin(values, "policy.uplift", "policy.random_uplift")
        means["margin.value_learned_minus_random"] = margin(values, "policy.value", "policy.random_value")
    if coverage:
        cs = list(coverage.values())
        for key in ("covers", "first_send_covers", "difference_covers", "all_covers"):
            means[f"control.{key.replace('covers', 'coverage')}"] = round(
                statistics.fmean(c[f"control.{key}"] for c in cs), 3
            )
        for key in ("estimate", "true_uplift", "first_send_uplift"):
            means[f"control.mean_{key}"] = round(statistics.fmean(c[f"control.{key}"] for c in cs), 5)
        means["control.mean_ci95_width"] = round(
            statistics.fmean(c["control.estimate_ci95"][1] - c["control.estimate_ci95"][0] for c in cs), 5
        )
        means["control.coverage_seeds"] = len(coverage)
    return means


def merge(paths: list[Path], out: Path) -> dict[str, Any]:
    """Merge the results of runs over different seeds (run in parallel processes)."""
    runs: dict[str, Any] = {}
    coverage: dict[str, Any] = {}
    parts = [orjson.loads(p.read_bytes()) for p in paths]
    for part in parts:
        runs |= part["runs"]
        coverage |= part["coverage"]
    merged = {"args": [p["args"] for p in parts], "runs": runs, "coverage": coverage}
    merged["means"] = summarize(runs, coverage)
    out.write_bytes(orjson.dumps(merged, option=orjson.OPT_INDENT_2))
    return merged


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5])
    ap.add_argument("--users", type=int, default=2000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--control-share", type=float, default=0.1)
    ap.add_argument("--coverage-seeds", type=int, nargs="*", default=[], help="e.g. 101 102 ... 120")
    ap.add_argument("--coverage-users", type=int, default=500)
    ap.add_argument("--actions", type=Path, default=None, help="an action catalog other than the shipped one")
    ap.add_argument("--merge", type=Path, nargs="*", default=[], help="merge these result files instead")
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/policy_run.json")
    args = ap.parse_args()
    if args.merge:
        print("means", orjson.dumps(merge(args.merge, args.out)["means"]).decode())
        raise SystemExit(0)
    runs = {}
    for seed in args.seeds:
        runs[str(seed)] = one_seed(seed, args.users, args.days, args.control_share, args.actions)
        print(seed, orjson.dumps(runs[str(seed)]).decode(), flush=True)
    coverage = {}
    for seed in args.coverage_seeds:
        world = WorldConfig(days=args.days, users=args.coverage_users, seed=seed)
        run = run_policy(
            world, setup(Settings()), control_share=args.control_share, actions=load_file(args.actions)
        )
        coverage[str(seed)] = control_estimate(run)
        print("coverage", seed, orjson.dumps(coverage[str(seed)]).decode(), flush=True)
    result = {"args": vars(args) | {"out": str(args.out), "merge": []}, "runs": runs, "coverage": coverage}
    if runs:
        result["means"] = summarize(runs, coverage)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print("means", orjson.dumps(result.get("means")).decode())
