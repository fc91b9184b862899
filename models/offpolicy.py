"""Off-policy evaluation: the value of any policy, estimated from another policy's decision log.

A logged decision (:class:`Logged`) holds the choices the logging policy had (after the contact
filters), the one it picked with its exact probability, the reward that followed (a conversion
within the attribution window), and a reward model's prediction for every choice. For a
deterministic target policy ``target(logged) -> choice index or None`` (``None``: nothing):

* **IPS** (inverse propensity scoring): ``mean(1[a = target] / p * r)``; unbiased when every
  choice the target makes has a positive logged probability, high variance;
* **DR** (doubly robust): ``mean(q(target) + 1[a = target] / p * (r - q(a)))``; unbiased if
  either the propensities or the reward model are right, and of lower variance than IPS.

Both also return a 95% interval (normal approximation over decisions).

Examples
--------
>>> import random
>>> rng, log = random.Random(0), []
>>> for _ in range(20_000):  # two choices and "nothing"; the logging policy is uniform
...     a = rng.choice([0, 1, None]); truth = {0: 0.1, 1: 0.3, None: 0.05}[a]
...     log.append(Logged(n=2, chosen=a, propensity=1 / 3, reward=float(rng.random() < truth),
...                       predicted=(0.2, 0.2), predicted_none=0.05))
>>> [lo < 0.3 < hi for _, lo, hi in (ips(log, lambda d: 1), dr(log, lambda d: 1))]  # always choice 1
[True, True]
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Logged:
    n: int
    """How many choices were allowed (indices ``0..n-1``); "nothing" is ``None``."""
    chosen: int | None
    propensity: float
    """Probability with which the logging policy picked ``chosen``."""
    reward: float
    predicted: tuple[float, ...]
    """The reward model's expected reward of each choice."""
    predicted_none: float
    """The reward model's expected reward of doing nothing."""

    def q(self, choice: int | None) -> float:
        return self.predicted_none if choice is None else self.predicted[choice]


Target = Callable[[Logged], int | None]


def logged(
    chosen: int | None, propensity: float, reward: float, allowed: Sequence[tuple[float, float, float]]
) -> Logged:
    """A decision of the learned policy as a :class:`Logged`: ``allowed`` holds each allowed
    choice's (score, uplift, P(convert)). The reward model is the policy's own uplift model:
    P(convert) for a choice, and for nothing the best-scored choice's P(convert) minus its uplift.

    >>> round(logged(None, 0.05, 0.0, [(1.0, 0.02, 0.12), (3.0, 0.05, 0.2)]).predicted_none, 3)
    0.15
    """
    best = max(allowed, key=lambda a: a[0])
    return Logged(
        n=len(allowed),
        chosen=chosen,
        propensity=propensity,
        reward=reward,
        predicted=tuple(a[2] for a in allowed),
        predicted_none=best[2] - best[1],
    )


def _mean_ci(values: Sequence[float]) -> tuple[float, float, float]:
    if not values:
        return math.nan, math.nan, math.nan
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.inf
    return round(mean, 4), round(mean - half, 4), round(mean + half, 4)


def ips(log: Sequence[Logged], target: Target) -> tuple[float, float, float]:
    """Inverse-propensity estimate of ``target``'s mean reward per decision: (mean, low, high)."""
    return _mean_ci([(d.reward / d.propensity if target(d) == d.chosen else 0.0) for d in log])


def dr(log: Sequence[Logged], target: Target) -> tuple[float, float, float]:
    """Doubly robust estimate of ``target``'s mean reward per decision: (mean, low, high)."""
    values = []
    for d in log:
        t = target(d)
        correction = (d.reward - d.q(d.chosen)) / d.propensity if t == d.chosen else 0.0
        values.append(d.q(t) + correction)
    return _mean_ci(values)
