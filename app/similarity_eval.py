"""The next-purchase evaluation of ``nba evaluate``: hit rate at 10, prequentially.

Every purchase of an item the user has not bought yet is a target: each recommender ranks
items *before* the purchase is learned, from what it learned of earlier events, and scores a hit
when the bought item is in its top 10. The first ``tune_days`` of event time are the tuning
period (the blend weights of the served similarity, the weight of popular items, the popularity
baseline's variant, the item-kNN reference's neighbourhood size, shrinkage and weighting are
chosen there, each by its own hit rate); the figures are over the days after it.

* ``similarity.hr10``: :func:`models.recommend.recommend` over the online models
  (:mod:`models.similarity`), exactly the code a worker runs, with the fitted blend.
* ``similarity.hr10_popularity``: the better on the tuning days of all-time purchase counts and
  decayed (trending) popularity, excluding what the user bought.
* ``similarity.hr10_itemknn``: :mod:`app.itemknn_ref`, written independently of the online code:
  item-kNN refitted on all past data at each evaluation day.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from app.itemknn_ref import ItemKNNReference, Target
from models.catalog import CatalogEntry
from models.recommend import RecConfig, Trending, recommend
from models.similarity import (
    DAY,
    Blend,
    BlendedSimilarity,
    ContentSimilarity,
    CoOccurrence,
    InteractionWeights,
)

BLEND_GRID = tuple(Blend(cooc=1.0, content=c) for c in (0.0, 0.05, 0.2, 0.5))
POPULAR_GRID = (0.1, 0.3)
INTERACTIONS = ("click", "view", "share", "purchase")


@dataclass(slots=True)
class _Hits:
    tune: list[int] = field(default_factory=list)
    test: list[int] = field(default_factory=list)

    def add(self, hit: bool, tuning: bool) -> None:
        (self.tune if tuning else self.test).append(int(hit))

    @staticmethod
    def rate(xs: list[int]) -> float | None:
        return round(sum(xs) / len(xs), 4) if xs else None


class SimilarityRecorder:
    """Feeds the online similarity models and scores every new purchase before learning it."""

    def __init__(self, catalog: dict[str, CatalogEntry], top_k: int = 10, tune_days: int = 30) -> None:
        self.top_k = top_k
        self.tune_days = tune_days
        self.catalog = catalog
        self.weights = InteractionWeights()
        self.cooc = CoOccurrence(weights=self.weights)
        self.similarity = BlendedSimilarity(self.cooc, ContentSimilarity(catalog))
        self.trending = Trending()
        self.counts: Counter[str] = Counter()
        self.start: float | None = None
        self.grid = [(b, p) for b in BLEND_GRID for p in POPULAR_GRID]
        self.grid_hits = {g: _Hits() for g in self.grid}
        self.chosen: tuple[Blend, float] | None = None
        self.hits = _Hits()
        self.popularity = {"all_time": _Hits(), "trending": _Hits()}
        self.interactions: list[tuple[float, str, str, str, float]] = []
        self.targets: list[Target] = []
        self.seconds = 0.0
        self.learned = 0

    def _tuning(self, ts: float) -> bool:
        if self.start is None:
            self.start = ts
        return ts < self.start + self.tune_days * DAY

    def interaction(
        self, user: str, item: str, kind: str, ts: float, progress: float, segment: int | None, channel: str
    ) -> None:
        """Learn one applied interaction (after :meth:`purchase` scored it, for a purchase)."""
        if kind not in INTERACTIONS:
            return
        self._tuning(ts)
        started = time.perf_counter()
        x = {"user": user, "item": item, "kind": kind, "ts": ts, "progress": progress}
        self.cooc.learn_one(x)
        self.trending.learn_one({**x, "segment": segment, "channel": channel})
        self.seconds += time.perf_counter() - started
        self.learned += 1
        if kind == "purchase":
            self.counts[item] += 1
        self.interactions.append((ts, user, item, kind, self.weights.of(kind, progress)))

    def purchase(
        self, user: str, item: str, ts: float, bought: set[str], segment: int | None, channel: str
    ) -> None:
        """Score a purchase of a new item, before it is learned."""
        tuning = self._tuning(ts)
        history = self.cooc.recent_items(user)
        if tuning:
            for blend, popular in self.grid:
                recs = self._recommend(history, ts, bought, segment, channel, blend, popular)
                self.grid_hits[(blend, popular)].add(item in recs, True)
        else:
            if self.chosen is None:
                self.chosen = self._best()
            recs = self._recommend(history, ts, bought, segment, channel, *self.chosen)
            self.hits.add(item in recs, False)
        k = self.top_k
        all_time = [i for i, _ in self.counts.most_common(k + len(bought)) if i not in bought][:k]
        trending = [i for i in self.trending.top(k + len(bought)) if i not in bought][:k]
        self.popularity["all_time"].add(item in all_time, tuning)
        self.popularity["trending"].add(item in trending, tuning)
        self.targets.append(Target(ts, user, item, frozenset(bought)))

    def _recommend(
        self,
        history: list[tuple[str, float, float]],
        ts: float,
        bought: set[str],
        segment: int | None,
        channel: str,
        blend: Blend,
        popular: float,
    ) -> set[str]:
        cfg = RecConfig(k=self.top_k, popular=popular)
        recs = recommend(
            history, ts, self.similarity, self.trending, bought, self.catalog, cfg, segment, channel, blend
        )
        return {r.item_id for r in recs}

    def _best(self) -> tuple[Blend, float]:
        def rate(g: tuple[Blend, float]) -> float:
            return _Hits.rate(self.grid_hits[g].tune) or 0.0

        return max(self.grid, key=rate)

    def report(self) -> dict[str, Any]:
        chosen = self.chosen or self._best()
        pop = max(self.popularity, key=lambda v: _Hits.rate(self.popularity[v].tune) or 0.0)
        ref = ItemKNNReference(top_k=self.top_k, tune_days=self.tune_days).run(
            self.interactions, self.targets
        )
        return {
            "similarity.purchases_scored": len(self.hits.test),
            "similarity.hr10": _Hits.rate(self.hits.test),
            "similarity.hr10_popularity": _Hits.rate(self.popularity[pop].test),
            "similarity.hr10_itemknn": ref["hr10"],
            "similarity.hr10_vs_popularity": _ratio(
                _Hits.rate(self.hits.test), _Hits.rate(self.popularity[pop].test)
            ),
            "similarity.hr10_vs_itemknn": _ratio(_Hits.rate(self.hits.test), ref["hr10"]),
            "similarity.blend": {"cooc": chosen[0].cooc, "content": chosen[0].content, "popular": chosen[1]},
            "similarity.tuning": {
                "days": self.tune_days,
                "purchases": len(next(iter(self.grid_hits.values())).tune),
                "grid": {
                    f"content={b.content},popular={p}": _Hits.rate(h.tune)
                    for (b, p), h in self.grid_hits.items()
                },
                "popularity": {v: _Hits.rate(h.tune) for v, h in self.popularity.items()},
                "popularity_variant": pop,
                "itemknn": ref["tuning"],
            },
            "similarity.update_us_per_event": round(1e6 * self.seconds / self.learned, 1)
            if self.learned
            else None,
        }


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None
