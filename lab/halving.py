"""Successive halving over a grid of configurations, scored target by target in event order.

What it promises:

* Every configuration still in the race scores the same targets (the comparison is paired).
* No configuration is dropped during a warm-up: on a stream, the first targets (scored when
  the models have seen little) say least about the days after, so every configuration scores
  them all and the first cut comes after them.
* After each rung the better half stays in (by hit rate over every target it scored; ties keep
  the earlier configuration in grid order), until ``floor`` are left; each rung is twice as
  long as the one before, so each rung costs about the same number of scorings. Those left
  score every remaining target.
* The choice is the configuration left with the best hit rate over every target it scored.

This is the standard successive-halving search (Jamieson and Talwalkar, 2016, "Non-stochastic
best arm identification and hyperparameter optimization"), which spends the scoring budget on
configurations that are still in contention instead of spreading it evenly over a grid.

>>> h = Halving(["bad", "good", "ok", "worse"], rung=2, floor=2)
>>> for _ in range(2):
...     h.add({"bad": False, "good": True, "ok": True, "worse": False})
>>> h.alive
['good', 'ok']
>>> h.add({"good": True, "ok": False})
>>> h.best(), h.scored("bad"), h.scored("good")
('good', 2, 3)
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Generic, TypeVar

C = TypeVar("C", bound=Hashable)

SEARCH = (
    "every configuration on every target of the first half of the tuning days, then successive "
    "halving (lab.halving): the better half stays after each rung"
)
"""How ``nba evaluate`` tunes with it (what its report says)."""


class Halving(Generic[C]):
    """Successive halving of ``configs``: the first rung is ``rung`` targets long."""

    def __init__(self, configs: Sequence[C], rung: int = 500, floor: int = 4) -> None:
        if not configs:
            raise ValueError("no configurations to choose from")
        self.configs = list(configs)
        self.rung = rung
        self.floor = floor
        self.alive = list(configs)
        self.hits: dict[C, int] = {c: 0 for c in configs}
        self.n: dict[C, int] = {c: 0 for c in configs}
        self._left = rung
        self._length = rung

    def add(self, hits: Mapping[C, bool], warm: bool = False) -> None:
        """One target, scored by every configuration still in (``hits[c]``: did ``c`` hit it).
        ``warm``: a warm-up target, counted but never followed by a cut (the first rung starts
        after the warm-up)."""
        for c in self.alive:
            self.n[c] += 1
            self.hits[c] += bool(hits[c])
        if warm:
            return
        self._left -= 1
        if self._left == 0 and len(self.alive) > self.floor:
            keep = max(self.floor, len(self.alive) // 2)
            order = {c: i for i, c in enumerate(self.configs)}
            ranked = sorted(self.alive, key=lambda c: (-self.rate(c), order[c]))
            kept = set(ranked[:keep])
            self.alive = [c for c in self.alive if c in kept]
            self._length *= 2
            self._left = self._length

    def rate(self, c: C) -> float:
        """``c``'s hit rate over the targets it scored (0 before any)."""
        return self.hits[c] / self.n[c] if self.n[c] else 0.0

    def scored(self, c: C) -> int:
        return self.n[c]

    def best(self) -> C:
        order = {c: i for i, c in enumerate(self.configs)}
        return min(self.alive, key=lambda c: (-self.rate(c), order[c]))

    def drop(self, out: Sequence[C]) -> None:
        """Take configurations out of the race before any is scored (they would score the same
        as one that stays)."""
        gone = set(out)
        alive = [c for c in self.alive if c not in gone]
        if not alive:
            raise ValueError("every configuration would be dropped")
        self.alive = alive
        self.configs = [c for c in self.configs if c not in gone]
