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

from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from schemas.vocabulary import DAY

KS = (10, 20, 50, 100, 0)  # 0: every neighbour
SHRINKS = (0.0, 10.0, 50.0, 200.0)
SCHEMES = ("binary", "weighted")
HISTORIES = (3, 5, 10, 0)  # the user's last h items; 0: all of them


Matrix = tuple[str, float, int]
"""(weighting, shrinkage, neighbours kept): one fitted similarity matrix."""
Config = tuple[str, float, int, int]
"""A matrix and the history length it ranks from."""


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
        tune_hits: dict[Config, list[int]] = {c: [] for c in configs}
        test_hits: list[int] = []
        best: Config | None = None
        items: dict[str, int] = {}
        history: dict[str, dict[int, float]] = {}
        bought_counts: Counter[int] = Counter()
        at = 0  # interactions applied to ``history``
        t = 0
        while t < len(targets):
            day = int((targets[t].ts - day0) // DAY)
            day_start = day0 + day * DAY
            at = self._apply(interactions, at, day_start, items, history, bought_counts)
            tuning = day < self.tune_days
            if not tuning and best is None:
                best = _best(configs, tune_hits)
            if tuning:
                wanted = configs
            else:
                assert best is not None
                wanted = [best]
            matrices = sorted({c[:3] for c in wanted})
            fitted = self._fit(history, len(items), matrices)
            lengths = {
                m: sorted({c[3] for c in wanted if c[:3] == m}, key=lambda h: h or 1 << 30) for m in matrices
            }
            popular = [i for i, _ in bought_counts.most_common()]
            names = {v: k for k, v in items.items()}
            while t < len(targets) and targets[t].ts < day_start + DAY:
                target = targets[t]
                at = self._apply(interactions, at, target.ts, items, history, bought_counts)
                for m in matrices:
                    tops = self._rank(
                        history.get(target.user, {}),
                        fitted[m],
                        m[0],
                        target.exclude,
                        names,
                        popular,
                        lengths[m],
                    )
                    for h, top in tops.items():
                        hit = int(target.item in top)
                        (tune_hits[(*m, h)] if tuning else test_hits).append(hit)
                t += 1
        chosen = best or _best(configs, tune_hits)
        return {
            "hr10": round(float(np.mean(test_hits)), 4) if test_hits else None,
            "tuning": {
                "chosen": {
                    "weighting": chosen[0],
                    "shrinkage": chosen[1],
                    "k": chosen[2] or "all",
                    "history": chosen[3] or "all",
                },
                "hr10_tune": round(float(np.mean(tune_hits[chosen])), 4) if tune_hits[chosen] else None,
                "configs": len(configs),
            },
        }

    @staticmethod
    def _apply(
        interactions: list[tuple[float, str, str, str, float]],
        at: int,
        until: float,
        items: dict[str, int],
        history: dict[str, dict[int, float]],
        bought_counts: Counter[int],
    ) -> int:
        """Add every interaction before ``until`` to the users' histories (each history ordered
        by the items' latest interaction, oldest first)."""
        while at < len(interactions) and interactions[at][0] < until:
            _, user, item, kind, weight = interactions[at]
            col = items.setdefault(item, len(items))
            row = history.setdefault(user, {})
            row[col] = row.pop(col, 0.0) + weight
            if kind == "purchase":
                bought_counts[col] += 1
            at += 1
        return at

    def _fit(
        self, history: dict[str, dict[int, float]], n_items: int, configs: list[Matrix]
    ) -> dict[Matrix, sparse.csr_matrix]:
        out: dict[Matrix, sparse.csr_matrix] = {}
        for scheme in {c[0] for c in configs}:
            rows, cols, vals = [], [], []
            for r, (_, h) in enumerate(history.items()):
                for col, w in h.items():
                    rows.append(r)
                    cols.append(col)
                    vals.append(1.0 if scheme == "binary" else w)
            matrix = sparse.csr_matrix((vals, (rows, cols)), shape=(len(history), n_items))
            co = (matrix.T @ matrix).tocoo()
            norms = np.sqrt(np.maximum(co.diagonal() if n_items else np.zeros(0), 0.0))
            keep = co.row != co.col
            r, c, v = co.row[keep], co.col[keep], co.data[keep]
            for shrink in {c_[1] for c_ in configs if c_[0] == scheme}:
                sims = v / (norms[r] * norms[c] + shrink + 1e-12)
                full = sparse.csr_matrix((sims, (r, c)), shape=(n_items, n_items))
                for k in {c_[2] for c_ in configs if c_[0] == scheme and c_[1] == shrink}:
                    out[(scheme, shrink, k)] = _top_k_rows(full, k) if k else full
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


def _top_k_rows(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """Keep the ``k`` largest entries of each row."""
    rows, cols, vals = [], [], []
    for i in range(matrix.shape[0]):
        start, end = matrix.indptr[i], matrix.indptr[i + 1]
        data = matrix.data[start:end]
        keep = np.argpartition(-data, k - 1)[:k] if len(data) > k else np.arange(len(data))
        rows.extend([i] * len(keep))
        cols.extend(matrix.indices[start:end][keep].tolist())
        vals.extend(data[keep].tolist())
    return sparse.csr_matrix((vals, (rows, cols)), shape=matrix.shape)


def _best(configs: list[Config], hits: dict[Config, list[int]]) -> Config:
    return max(configs, key=lambda c: float(np.mean(hits[c])) if hits[c] else 0.0)
