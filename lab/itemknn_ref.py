"""The batch reference for the next-purchase evaluation: item-kNN refitted daily on all past data.

Written independently of :mod:`models.similarity` (no shared code beyond the interaction
weights it is handed): at the start of each day of event time it builds the user-item matrix of
every interaction before that day (binary, or the sum of interaction weights), computes the
cosine similarity of every item pair with a shrinkage term, keeps each item's ``k`` nearest
neighbours, and ranks items for a user by the summed similarity to the user's last ``h`` items
*up to the purchase* (ordered by their latest interaction; so it sees the same day's events as
the online model does), filling empty slots with the most bought items. Its neighbourhood size,
shrinkage, weighting and history length are chosen by hit rate on the first ``tune_days`` days,
as a careful practitioner would tune a batch baseline; the reported figure is over the days after.
"""

from __future__ import annotations

from array import array
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from lab.halving import SEARCH, Halving
from schemas.vocabulary import DAY

KS = (10, 20, 50, 100, 0)  # 0: every neighbour
SHRINKS = (0.0, 10.0, 50.0, 200.0)
SCHEMES = ("binary", "weighted")
HISTORIES = (3, 5, 10, 0)  # the user's last h items; 0: all of them


Matrix = tuple[str, float, int]
"""(weighting, shrinkage, neighbours kept): one fitted similarity matrix."""
Config = tuple[str, float, int, int]
"""A matrix and the history length it ranks from."""


@dataclass(slots=True)
class _Past:
    """Every interaction applied so far: per user, items by latest interaction (oldest first),
    and the user-item entries of the matrix (one per interaction: duplicates are summed)."""

    items: dict[str, int] = field(default_factory=dict)
    users: dict[str, int] = field(default_factory=dict)
    history: dict[str, dict[int, float]] = field(default_factory=dict)
    bought: Counter[int] = field(default_factory=Counter)
    rows: array[int] = field(default_factory=lambda: array("q"))
    cols: array[int] = field(default_factory=lambda: array("q"))
    weights: array[float] = field(default_factory=lambda: array("d"))


@dataclass(frozen=True, slots=True)
class Target:
    ts: float
    user: str
    item: str
    exclude: frozenset[str]
    """Items the user may not be offered: bought or dismissed before the purchase."""


class ItemKNNReference:
    def __init__(self, top_k: int = 10, tune_days: int = 30) -> None:
        self.top_k = top_k
        self.tune_days = tune_days

    def run(
        self, interactions: list[tuple[float, str, str, str, float]], targets: list[Target]
    ) -> dict[str, Any]:
        if not targets:
            return {"hr10": None, "tuning": None}
        interactions = sorted(interactions, key=lambda r: r[0])
        targets = sorted(targets, key=lambda t: t.ts)
        start = min(interactions[0][0] if interactions else targets[0].ts, targets[0].ts)
        day0 = np.floor(start / DAY) * DAY
        configs = [(s, sh, k, h) for s in SCHEMES for sh in SHRINKS for k in KS for h in HISTORIES]
        search: Halving[Config] = Halving(configs)
        tuning_targets = 0
        test_hits: list[int] = []
        best: Config | None = None
        past = _Past()
        at = 0  # interactions applied to ``past``
        t = 0
        while t < len(targets):
            day = int((targets[t].ts - day0) // DAY)
            day_start = day0 + day * DAY
            at = self._apply(interactions, at, day_start, past)
            tuning = day < self.tune_days
            if not tuning and best is None:
                best = search.best()
            fitted = self._fit(past, sorted({c[:3] for c in self._wanted(search, best)}))
            popular = [i for i, _ in past.bought.most_common()]
            names = {v: k for k, v in past.items.items()}
            while t < len(targets) and targets[t].ts < day_start + DAY:
                target = targets[t]
                at = self._apply(interactions, at, target.ts, past)
                wanted = self._wanted(search, best)
                hits: dict[Config, bool] = {}
                for m in sorted({c[:3] for c in wanted}):
                    lengths = sorted({c[3] for c in wanted if c[:3] == m}, key=lambda h: h or 1 << 30)
                    tops = self._rank(
                        past.history.get(target.user, {}),
                        fitted[m],
                        m[0],
                        target.exclude,
                        names,
                        popular,
                        lengths,
                    )
                    for h, top in tops.items():
                        hits[(*m, h)] = target.item in top
                if tuning:
                    search.add(hits, warm=day < self.tune_days / 2)
                    tuning_targets += 1
                else:
                    test_hits.extend(int(h) for h in hits.values())
                t += 1
        chosen = best or search.best()
        return {
            "hr10": round(float(np.mean(test_hits)), 4) if test_hits else None,
            "tuning": {
                "chosen": {
                    "weighting": chosen[0],
                    "shrinkage": chosen[1],
                    "k": chosen[2] or "all",
                    "history": chosen[3] or "all",
                },
                "hr10_tune": round(search.rate(chosen), 4) if search.scored(chosen) else None,
                "purchases": tuning_targets,
                "configs": len(configs),
                "search": SEARCH,
            },
        }

    @staticmethod
    def _wanted(search: Halving[Config], best: Config | None) -> list[Config]:
        """What to score: the configurations still in the race, or the chosen one after tuning."""
        return search.alive if best is None else [best]

    @staticmethod
    def _apply(
        interactions: list[tuple[float, str, str, str, float]], at: int, until: float, past: _Past
    ) -> int:
        """Add every interaction before ``until`` to ``past`` (each user's history ordered by
        the items' latest interaction, oldest first)."""
        while at < len(interactions) and interactions[at][0] < until:
            _, user, item, kind, weight = interactions[at]
            col = past.items.setdefault(item, len(past.items))
            row = past.history.setdefault(user, {})
            row[col] = row.pop(col, 0.0) + weight
            past.rows.append(past.users.setdefault(user, len(past.users)))
            past.cols.append(col)
            past.weights.append(weight)
            if kind == "purchase":
                past.bought[col] += 1
            at += 1
        return at

    def _fit(self, past: _Past, configs: list[Matrix]) -> dict[Matrix, sparse.csr_matrix]:
        out: dict[Matrix, sparse.csr_matrix] = {}
        n_items = len(past.items)
        rows = np.frombuffer(past.rows, dtype=np.int64) if past.rows else np.zeros(0, np.int64)
        cols = np.frombuffer(past.cols, dtype=np.int64) if past.cols else np.zeros(0, np.int64)
        weights = np.frombuffer(past.weights, dtype=np.float64) if past.weights else np.zeros(0)
        summed = sparse.csr_matrix((weights, (rows, cols)), shape=(len(past.users), n_items))
        summed.sum_duplicates()
        for scheme in {c[0] for c in configs}:
            matrix = summed if scheme == "weighted" else summed.copy()
            if scheme == "binary":
                matrix.data = np.ones_like(matrix.data)
            co = (matrix.T @ matrix).tocoo()
            norms = np.sqrt(np.maximum(co.diagonal() if n_items else np.zeros(0), 0.0))
            keep = co.row != co.col
            r, c, v = co.row[keep], co.col[keep], co.data[keep]
            for shrink in {c_[1] for c_ in configs if c_[0] == scheme}:
                sims = v / (norms[r] * norms[c] + shrink + 1e-12)
                full = sparse.csr_matrix((sims, (r, c)), shape=(n_items, n_items))
                ks = {c_[2] for c_ in configs if c_[0] == scheme and c_[1] == shrink}
                ranked = _RowRanks(full, max(ks)) if any(ks) else None
                for k in ks:
                    out[(scheme, shrink, k)] = ranked.top(k) if ranked is not None and k else full
        return out

    def _rank(
        self,
        user_history: dict[int, float],
        sims: sparse.csr_matrix,
        scheme: str,
        exclude: frozenset[str],
        names: dict[int, str],
        popular: list[int],
        lengths: list[int],
    ) -> dict[int, set[str]]:
        """The top items from the user's last ``h`` items, for each ``h`` in ``lengths`` (ascending,
        0 last: the whole history), accumulated newest first in one pass."""
        n = sims.shape[0]
        scores = np.zeros(n)
        out: dict[int, set[str]] = {}
        for used, (col, w) in enumerate(reversed(user_history.items())):
            while lengths[len(out)] and used == lengths[len(out)]:
                out[lengths[len(out)]] = self._top(scores, exclude, names, popular)
                if len(out) == len(lengths):
                    return out
            if col < n:
                start, end = sims.indptr[col], sims.indptr[col + 1]
                scores[sims.indices[start:end]] += (1.0 if scheme == "binary" else w) * sims.data[start:end]
        top = self._top(scores, exclude, names, popular)
        for h in lengths[len(out) :]:
            out[h] = top
        return out

    def _top(
        self, scores: np.ndarray, exclude: frozenset[str], names: dict[int, str], popular: list[int]
    ) -> set[str]:
        m = self.top_k + len(exclude)  # enough to fill the list past every excluded item
        if m < len(scores):  # the same order as a full stable sort, over the items tied or above the m-th
            cut = np.partition(scores, len(scores) - m)[len(scores) - m]
            keep = np.flatnonzero(scores >= cut)
            order = keep[np.argsort(-scores[keep], kind="stable")]
        else:
            order = np.argsort(-scores, kind="stable")
        top: list[str] = []
        for i in order:
            if scores[i] <= 0 or len(top) == self.top_k:
                break
            if names[int(i)] not in exclude:
                top.append(names[int(i)])
        for i in popular:  # fill with the most bought items
            if len(top) == self.top_k:
                break
            name = names[i]
            if name not in exclude and name not in top:
                top.append(name)
        return set(top)


class _RowRanks:
    """Each row's largest entries of ``matrix``, best first (ties: the lower column; on the dense
    path, which of several entries tied at the ``widest``-th place is kept is numpy's choice,
    the same on every run), found once for every neighbourhood size kept (up to ``widest``)."""

    DENSE_ITEMS = 4096
    """Up to this many items, rows are ranked on a dense copy (128 MiB for 4,096 items, and as
    much again for the partition's indices, while one matrix is ranked)."""

    def __init__(self, matrix: sparse.csr_matrix, widest: int) -> None:
        n = matrix.shape[0]
        self.shape = matrix.shape
        width = min(widest, n)
        if n <= self.DENSE_ITEMS and width:
            dense = matrix.toarray()
            part = (
                np.argpartition(-dense, width - 1, axis=1)[:, :width]
                if width < n
                else np.tile(np.arange(n), (n, 1))
            )
            vals = np.take_along_axis(dense, part, axis=1)
            order = np.lexsort((part, -vals), axis=1)
            self.cols = np.take_along_axis(part, order, axis=1)
            self.vals = np.take_along_axis(vals, order, axis=1)
        else:  # a large catalog: row by row
            self.cols = np.zeros((n, width), dtype=np.int64)
            self.vals = np.zeros((n, width))
            for i in range(n):
                start, end = matrix.indptr[i], matrix.indptr[i + 1]
                data, idx = matrix.data[start:end], matrix.indices[start:end]
                best = np.lexsort((idx, -data))[:width]
                self.cols[i, : len(best)], self.vals[i, : len(best)] = idx[best], data[best]

    def top(self, k: int) -> sparse.csr_matrix:
        """The matrix with the ``k`` largest entries of each row kept (zeros are not entries)."""
        vals, cols = self.vals[:, :k], self.cols[:, :k]
        rows = np.broadcast_to(np.arange(self.shape[0])[:, None], vals.shape)
        keep = vals > 0
        return sparse.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=self.shape)
