"""Item vectors learned online by River's matrix factorisation, from implicit feedback.

What it promises:

* :class:`ItemEmbedding` factorises "after interacting with item ``c``, the user interacts with
  item ``i``" with :class:`river.reco.FunkMF` and the logistic loss: each interaction is a
  positive for the user's ``context`` most recent other items, and ``negatives`` items drawn
  uniformly from the items seen so far are negatives. River's factorisation learns explicit
  ratings; the sampled zeros are what turn it into an implicit-feedback model. (Negatives drawn
  in proportion to recent popularity did worse on one 2,000-user simulated world: the
  factorisation alone reached a hit rate of 0.17 to 0.19 on its tuning days, against 0.21.)
* Both sides of the factorisation are items (the first is the earlier item, the second the
  later one), so it holds **no per-user factors**: erasing a user needs nothing from it, and it
  learns from the same samples as :class:`models.similarity.CoOccurrence`.
* ``similarity(c, i)`` is the learned evidence above chance that ``i`` follows ``c``:
  ``2 * sigmoid(u_c . v_i) - 1``, floored at 0. :meth:`ItemEmbedding.neighbours` ranks every
  known item by it, from a matrix of the item vectors rebuilt after every ``refresh_every``
  interactions (:attr:`ItemEmbedding.version` says when), so a read costs one matrix-vector
  product.
* Seeded (initial vectors and negative draws), bounded per event (``context * (1 + negatives)``
  updates), and picklable.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from river import optim, reco


class ItemEmbedding:
    """Online item-to-item factorisation with negative sampling (see the module docstring).

    Parameters
    ----------
    n_factors
        Size of the item vectors.
    learning_rate
        Step of River's SGD optimiser (a constant step also lets old interactions fade).
    l2
        L2 penalty on the vectors.
    context
        How many of the user's most recent other items each interaction is a positive for.
    negatives
        Negative items drawn per positive, uniformly from the items seen.
    refresh_every
        Interactions between rebuilds of the item matrix that :meth:`neighbours` ranks with.
    seed
        Seeds the initial vectors and the negative draws.

    Examples
    --------
    >>> emb = ItemEmbedding(n_factors=8, refresh_every=1, seed=1)
    >>> for u in range(300):
    ...     emb.learn_one("b", [f"x{u % 7}", "a"])      # "b" follows "a"
    ...     emb.learn_one(f"y{u % 11}", [f"x{u % 5}"])  # noise
    >>> emb.neighbours("a", 1)[0][0]
    'b'
    >>> emb.similarity("a", "b") > emb.similarity("a", "y3")
    True
    """

    def __init__(
        self,
        n_factors: int = 16,
        learning_rate: float = 0.05,
        l2: float = 1e-4,
        context: int = 4,
        negatives: int = 2,
        refresh_every: int = 1_000,
        seed: int = 42,
    ) -> None:
        self.n_factors = n_factors
        self.learning_rate = learning_rate
        self.l2 = l2
        self.context = context
        self.negatives = negatives
        self.refresh_every = refresh_every
        self.seed = seed
        self.mf = reco.FunkMF(
            n_factors=n_factors,
            optimizer=optim.SGD(learning_rate),
            loss=optim.losses.Log(),
            l2=l2,
            initializer=optim.initializers.Normal(mu=0.0, sigma=0.1, seed=seed),
            seed=seed,
        )
        self._rng = random.Random(seed)
        self._items: list[str] = []
        self._known: set[str] = set()
        self.n_learned = 0
        self.version = 0
        self._names: list[str] = []
        self._matrix: np.ndarray[Any, np.dtype[np.float64]] = np.zeros((0, n_factors))
        self._top: dict[str, tuple[int, int, list[tuple[str, float]]]] = {}

    def learn_one(self, item: str, recent: Sequence[str]) -> None:
        """Learn that ``item`` followed the user's ``recent`` items (oldest first)."""
        before = [c for c in recent[-self.context :] if c != item]
        learn: Callable[[str, str, bool], None] = self.mf.learn_one
        for c in before:
            learn(c, item, True)
            for _ in range(self.negatives):
                if not self._items:
                    break
                other = self._items[self._rng.randrange(len(self._items))]
                if other != item and other not in before:
                    learn(c, other, False)
        if item not in self._known:
            self._known.add(item)
            self._items.append(item)
        self.n_learned += 1
        if self.n_learned % self.refresh_every == 0:
            self._rebuild()

    def _rebuild(self) -> None:
        self._names = sorted(str(i) for i in self.mf.i_latents)
        vectors = [self.mf.i_latents[i] for i in self._names]
        self._matrix = np.vstack(vectors) if vectors else np.zeros((0, self.n_factors))
        self.version += 1
        self._top.clear()

    def similarity(self, before: str, after: str) -> float:
        """The learned evidence that ``after`` follows ``before``, in [0, 1) (0 for unknown items)."""
        u, v = self.mf.u_latents.get(before), self.mf.i_latents.get(after)
        if u is None or v is None:
            return 0.0
        return _lift(float(np.dot(u, v)))

    def neighbours(self, item: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` items most likely to follow ``item``, as of the last matrix rebuild."""
        u = self.mf.u_latents.get(item)
        if u is None or not self._names:
            return []
        cached = self._top.get(item)
        if cached is not None and cached[0] == self.version and cached[1] >= k:
            return cached[2][:k]
        scores = self._matrix @ u
        n = min(k + 1, len(self._names))
        best = np.argpartition(-scores, n - 1)[:n]
        ranked = sorted(
            (
                (self._names[int(j)], _lift(float(scores[j])))
                for j in best
                if self._names[int(j)] != item and scores[j] > 0
            ),
            key=lambda t: (-t[1], t[0]),
        )[:k]
        self._top[item] = (self.version, k, ranked)
        return ranked


def _lift(z: float) -> float:
    """``2 * sigmoid(z) - 1`` floored at 0: the learned evidence above chance, in [0, 1)."""
    return max(0.0, math.tanh(z / 2.0))
