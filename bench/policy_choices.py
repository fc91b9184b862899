"""What the learned policy chooses in the closed loop, against the oracle, per action type.

    python -m bench.policy_choices --users 1000 --seed 2 [--actions path/to/actions.yaml]

One world (90 days) with the learned policy deciding (:func:`lab.sim.policy_run.run_policy`).
At each of its decision points, per action type (and "nothing"): how often the learned policy
and the oracle (the allowed choice of highest true uplift) pick it, the true incremental
conversions the learned policy's picks earned, and what it lost against the oracle there. Then,
per action type over every allowed choice, the uplift model's estimate (at the decision)
against the simulator's true extra purchase probability. It shows which estimates the policy's
losses come from.
"""

from __future__ import annotations

import argparse
import statistics
from collections import Counter, defaultdict
from pathlib import Path

from app.action_catalog import load_file
from app.rules import setup
from app.settings import Settings
from lab.sim.policy_run import PolicyRun, run_policy, true_uplifts
from lab.sim.responder import ResponseModel
from lab.sim.world import TIMEZONES, WorldConfig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--actions", type=Path, default=None, help="an action catalog other than the shipped one")
    args = ap.parse_args()
    actions = load_file(args.actions)
    run = run_policy(
        WorldConfig(days=args.days, users=args.users, seed=args.seed),
        setup(Settings()),
        control_share=0.1,
        actions=actions,
    )
    offsets = {name: offset for name, offset, _ in TIMEZONES}
    response, users = ResponseModel(), run.truth["users"]
    learned: Counter[str] = Counter()
    oracle: Counter[str] = Counter()
    earned: defaultdict[str, float] = defaultdict(float)
    lost: defaultdict[str, float] = defaultdict(float)
    estimates: defaultdict[str, list[tuple[float, float]]] = defaultdict(list)
    for point in run.policy.points:
        allowed, (at_once, oracle_true, true) = (
            point.allowed,
            true_uplifts(point, users[point.user_id], response, offsets),
        )
        for choice, t in zip(allowed, at_once, strict=True):  # each choice's estimate against the truth
            estimates[choice.action_type].append((choice.uplift, t))
        best = max(range(len(allowed)), key=oracle_true.__getitem__)
        oracle[allowed[best].action_type] += 1
        kind = "nothing" if point.chosen is None else allowed[point.chosen].action_type
        got = 0.0 if true is None else true
        learned[kind] += 1
        earned[kind] += got
        lost[kind] += oracle_true[best] - got
    print(
        f"catalog prior_weight {actions.prior_weight}, seed {args.seed},",
        f"{len(run.policy.points)} decision points",
    )
    print(f"{'picked':26s} {'learned':>8s} {'oracle':>8s} {'earned':>9s} {'lost':>9s}")
    for kind in sorted(set(learned) | set(oracle)):
        print(f"{kind:26s} {learned[kind]:8d} {oracle[kind]:8d} {earned[kind]:9.1f} {lost[kind]:9.1f}")
    print(f"{'allowed choices':26s} {'n':>8s} {'estimated':>10s} {'true':>8s}  (mean uplift)")
    for kind, pairs in sorted(estimates.items()):
        est = statistics.fmean(e for e, _ in pairs)
        true_mean = statistics.fmean(t for _, t in pairs)
        print(f"{kind:26s} {len(pairs):8d} {est:10.4f} {true_mean:8.4f}")
    labels(run)


def labels(run: PolicyRun) -> None:
    """Where the rule would act (three or more views of an unbought item), per group and action
    decided: the conversion the uplift model learns (:mod:`models.attribution`'s label) against a
    purchase of the item within the window after the send time (the closed loop's own record,
    whatever else was sent). The two should agree; they did not while the label's window opened at
    the decision for untreated decisions and a purchase converted only the latest exposure."""
    after_send = {d.action_id: d.converted for d in run.decisions}
    rows: defaultdict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)
    for point in run.policy.points:
        decision, chosen = point.decision_id, point.chosen
        if point.rule_arm is None or chosen is None or decision not in run.policy.outcomes:
            continue
        if decision in after_send:  # sent and control decisions (the loop records no others)
            rows[(point.outcome, point.allowed[chosen].action_type)].append(
                (float(run.policy.outcomes[decision]), float(after_send[decision]))
            )
    print(f"{'three or more views':40s} {'n':>6s} {'label':>7s} {'after send':>11s}")
    for (group, kind), pairs in sorted(rows.items()):
        label = statistics.fmean(a for a, _ in pairs)
        sent = statistics.fmean(b for _, b in pairs)
        print(f"{group + ', ' + kind:40s} {len(pairs):6d} {label:7.4f} {sent:11.4f}")


if __name__ == "__main__":
    main()
