"""Off-policy evaluation with a known logging policy recovers a known target policy's value; the
closed loop's decisions become such a log."""

from __future__ import annotations

import math
import random

from app.rules import setup
from app.settings import Settings
from lab.sim.policy_run import Choice, Point, StepPolicy, offpolicy_log
from models.offpolicy import Logged, dr, ips
from models.user_step import StepConfig

TRUE = {0: 0.05, 1: 0.15, 2: 0.30, None: 0.02}
"""Conversion probability of each choice (and of nothing) in the synthetic world."""


def _context(rng: random.Random) -> dict[int | None, float]:
    """A decision's true conversion probabilities: the choices' order changes with the context."""
    shift = rng.choice([0.0, 0.1])
    return {0: TRUE[0] + shift, 1: TRUE[1], 2: TRUE[2] - shift, None: TRUE[None]}


def _log(seed: int, n: int, reward_model_error: float) -> tuple[list[Logged], float]:
    """``n`` decisions by an epsilon-greedy logging policy (it prefers choice 0, explores 30%),
    and the exact value of the target "always choice 2" on the same contexts."""
    rng, log, target_value = random.Random(seed), [], 0.0
    for _ in range(n):
        truth = _context(rng)
        choices: list[int | None] = [0, 1, 2, None]
        explore = rng.random() < 0.3
        chosen = rng.choice(choices) if explore else 0
        propensity = 0.7 * (chosen == 0) + 0.3 / len(choices)
        reward = float(rng.random() < truth[chosen])
        predicted = tuple(truth[i] + reward_model_error for i in (0, 1, 2))
        log.append(Logged(3, chosen, propensity, reward, predicted, truth[None] + reward_model_error))
        target_value += truth[2]
    return log, target_value / n


def test_ips_and_dr_recover_a_known_target_policy_value() -> None:
    """Over ten logs, both estimates' 95% intervals cover the target's true value in at least
    eight, and their mean error is within about three standard errors; the logging policy
    rarely made the target's choice."""
    covered = {"ips": 0, "dr": 0}
    errors: dict[str, list[float]] = {"ips": [], "dr": []}
    for seed in range(10):
        log, value = _log(seed, 6000, reward_model_error=0.05)
        assert sum(d.chosen == 2 for d in log) < 0.1 * len(log)
        for name, estimator in (("ips", ips), ("dr", dr)):
            mean, lo, hi = estimator(log, lambda d: 2)
            covered[name] += lo <= value <= hi
            errors[name].append(mean - value)
    assert covered["ips"] >= 8 and covered["dr"] >= 8, covered
    for name in errors:  # mean of ten: about three standard errors of IPS here (p = 0.075)
        assert abs(sum(errors[name]) / 10) < 0.025, (name, errors[name])


def test_dr_with_a_good_reward_model_is_tighter_than_ips() -> None:
    log, value = _log(1, 6000, reward_model_error=0.0)
    _, ips_lo, ips_hi = ips(log, lambda d: 2)
    dr_mean, dr_lo, dr_hi = dr(log, lambda d: 2)
    assert dr_hi - dr_lo < ips_hi - ips_lo
    assert abs(dr_mean - value) < 0.02


def test_a_target_outside_the_logged_support_cannot_be_estimated_by_ips() -> None:
    """If the logging policy never makes the target's choice, IPS says zero (and is wrong): the
    reason the policy logs exact probabilities and explores every allowed choice."""
    log = [Logged(2, 0, 1.0, 1.0, (0.5, 0.5), 0.1) for _ in range(100)]
    assert ips(log, lambda d: 1)[0] == 0.0
    assert not math.isnan(dr(log, lambda d: 1)[0])


def test_the_closed_loops_log_names_the_rules_choice_and_whether_the_policy_ranked_it_first() -> None:
    def point(i: int, outcome: str, chosen: int | None, rule_arm: int | None, scores: list[float]) -> Point:
        allowed = tuple(Choice("a", "t", "app", 0.0, s, 0.01, 0.1, 1.0) for s in scores)
        return Point(
            user_id="u1",
            at=0.0,
            send_at=0.0,
            policy_send_at=None,
            slots=[],
            decision_id=f"d{i}",
            outcome=outcome,
            allowed=allowed,
            chosen=chosen,
            rule_channel=None,
            rule_arm=rule_arm,
            propensity=0.5,
            explored=False,
        )

    policy = StepPolicy(setup(Settings()), StepConfig(), catalog={})
    policy.points = [
        point(1, "sent", 0, 0, [2.0, 1.0]),  # the rule's choice is the top-scored one
        point(2, "no_action", None, 1, [2.0, 1.0]),  # the rule's choice is below the top
        point(3, "control", 0, 0, [2.0, 1.0]),  # a control user's decision: not in the log
        point(4, "sent", 1, None, [1.0, 3.0]),  # the rule does not act
        point(5, "sent", 0, 0, [1.0]),  # its window is still open: no outcome yet
    ]
    policy.outcomes = {"d1": True, "d2": False, "d3": True, "d4": False}
    log, rule, on_top = offpolicy_log(policy)
    assert [(d.chosen, d.reward) for d in log] == [(0, 1.0), (None, 0.0), (1, 0.0)]
    assert rule == [0, 1, None] and on_top == [True, False, False]
