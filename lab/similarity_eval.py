"""The next-purchase evaluation of ``nba evaluate``: hit rate at 10, prequentially.

Every purchase of an item the user has not bought yet is a target: each recommender ranks
items *before* the purchase is learned, from what it learned of earlier events, and scores a hit
when the bought item is in its top 10. The first ``tune_days`` of event time are the tuning
period (the blend weights of the served similarity, i.e. of co-occurrence, content and River's
factorisation; the co-occurrence half-life and shrinkage; the history length; the width of the
neighbourhood against popular items; the popularity baseline's variant; and the item-kNN
reference's neighbourhood size, shrinkage, weighting and history length are chosen there, each
by its own hit rate); the figures are over the days after it.

* ``similarity.hr10``: :class:`models.recommend.Recommender`, learning from the samples the
  worker's step emits (:func:`models.user_step.interaction_sample`) and recommending from the
  profile's recent items, exactly the code a worker and the learner run, with the fitted blend.
* ``similarity.hr10_popularity``: the better on the tuning days of all-time purchase counts and
  decayed (trending) popularity, excluding what the user bought.
* ``similarity.hr10_itemknn``: :mod:`lab.itemknn_ref`, written independently of the online code:
  item-kNN refitted on all past data at each evaluation day.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from lab.halving import SEARCH, Halving
from lab.itemknn_ref import ItemKNNReference, Target
from models.catalog import CatalogEntry
from models.embedding import ItemEmbedding
from models.recommend import RecConfig, Recommender
from models.similarity import Blend, CoOccurrence, InteractionWeights
from schemas.vocabulary import DAY

COOC_HALF_LIFE_DAYS = (30.0, 90.0)
COOC_SHRINKAGES = (5.0, 50.0)
"""In units of decayed interaction weight (a purchase weighs 5): 5 suits the dense simulated
platform world, 50 a long-tailed ratings log, where many pairs are seen once or twice."""
EMBEDDING_WEIGHTS = (0.0, 0.05)
"""The factorisation's weights tried. On a first 2,000-user simulated world, 0.1 and 0.2 scored
no better than these on the tuning days, and the factorisation alone (co-occurrence weight 0)
reached a hit rate of 0.19 to 0.21 against 0.45 for the co-occurrence."""
SHAPES = ((20, 30, 0.3), (3, 300, 0.05))
"""(recent items expanded, neighbours of each, weight of the popular items): the served shape,
the whole recent window with a few neighbours each padded with popular items; or the last three
items with wide neighbourhoods and popularity as a tie-break. On a bursty ratings log
(:mod:`lab.sim.ratings`) the last few items predict the next purchase best, and three items
need wide neighbourhoods to fill a list; on the smooth platform world the whole window does.
The mixed shapes are not tried: 20 items x 300 neighbours is the dearest of all to score.)"""
HISTORY_HALF_LIFE_DAYS = 60.0


@dataclass(frozen=True, slots=True)
class Grid:
    """One configuration tried on the tuning days: the co-occurrence half-life and shrinkage
    (one model per pair, all learning the same samples and sharing one factorisation), the
    content and factorisation weights of the blend, how many recent items are expanded, and
    how wide each one's neighbourhood is against the popular items."""

    cooc_half_life_days: float
    blend: Blend
    history_half_life_days: float
    history: int = 20
    cooc_shrinkage: float = 5.0
    neighbours: int = 30
    popular: float = 0.3

    @property
    def model(self) -> tuple[float, float]:
        return (self.cooc_half_life_days, self.cooc_shrinkage)


GRID = tuple(
    Grid(
        cooc_half_life,
        Blend(cooc=1.0, content=content, embedding=embedding),
        HISTORY_HALF_LIFE_DAYS,
        history,
        shrinkage,
        neighbours,
        popular,
    )
    for cooc_half_life in COOC_HALF_LIFE_DAYS
    for shrinkage in COOC_SHRINKAGES
    for content in (0.0, 0.2)
    for embedding in EMBEDDING_WEIGHTS
    for history, neighbours, popular in SHAPES
)
"""Content weights above 0 are dropped when the log has no catalog (they would score the same)."""


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
        embedding = ItemEmbedding()  # one factorisation, shared: it does not depend on the half-life
        self.models = {
            (h, sh): Recommender(CoOccurrence(half_life_days=h, shrinkage=sh), embedding=embedding).attach(
                catalog
            )
            for h in COOC_HALF_LIFE_DAYS
            for sh in COOC_SHRINKAGES
        }
        self.model = self.models[(COOC_HALF_LIFE_DAYS[0], COOC_SHRINKAGES[0])]
        self.counts: Counter[str] = Counter()
        self.start: float | None = None
        self.search: Halving[Grid] = Halving(GRID)
        self.tuning_purchases = 0
        self.chosen: Grid | None = None
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

    def _warming(self, ts: float) -> bool:
        """The first half of the tuning days: every configuration scores every purchase."""
        return self.start is not None and ts < self.start + self.tune_days * DAY / 2

    def interaction(self, user: str, sample: dict[str, Any]) -> None:
        """Learn one interaction sample (after :meth:`purchase` scored it, for a purchase)."""
        ts, item, kind = float(sample["ts"]), str(sample["item"]), str(sample["kind"])
        self._tuning(ts)
        started = time.perf_counter()
        self.model.learn_one(sample)
        self.seconds += time.perf_counter() - started
        for model in self.models.values():
            if model is not self.model:
                model.learn_one(sample, embedding=False)
        self.learned += 1
        if kind == "purchase":
            self.counts[item] += 1
        self.interactions.append((ts, user, item, kind, self.weights.of(kind, float(sample["progress"]))))

    def purchase(
        self,
        user: str,
        item: str,
        ts: float,
        exclude: set[str],
        history: list[tuple[str, float, float]],
        segment: int | None,
        channel: str,
    ) -> None:
        """Score a purchase of a new item, before it is learned (``history``: the user's recent
        items, as the worker reads them from the profile; ``exclude``: what no recommender may
        offer, the user's bought and dismissed items)."""
        tuning = self._tuning(ts)
        if tuning:
            if not self.catalog and any(g.blend.content for g in self.search.alive):
                self.search.drop([g for g in self.search.alive if g.blend.content])
            self.tuning_purchases += 1
            width = self._widest()
            self.search.add(
                {
                    g: item in self._recommend(history, ts, exclude, segment, channel, g)
                    for g in self.search.alive
                },
                warm=self._warming(ts),
            )
            if self._widest() < width:
                self._narrow()
        else:
            if self.chosen is None:
                self.chosen = self.search.best()
                self._narrow()
            recs = self._recommend(history, ts, exclude, segment, channel, self.chosen)
            self.hits.add(item in recs, False)
        k = self.top_k
        all_time = [i for i, _ in self.counts.most_common(k + len(exclude)) if i not in exclude][:k]
        trending = self.model.top(k, exclude=exclude)
        self.popularity["all_time"].add(item in all_time, tuning)
        self.popularity["trending"].add(item in trending, tuning)
        self.targets.append(Target(ts, user, item, frozenset(exclude)))

    def _widest(self) -> int:
        return max(g.neighbours for g in self.search.alive)

    def _narrow(self) -> None:
        """Drop the served neighbour lists, which are as wide as any configuration asked, once
        the widest configurations are out (what is learned is kept)."""
        for model in self.models.values():
            model.serve_with(model.blend, model.config)

    def _recommend(
        self,
        history: list[tuple[str, float, float]],
        ts: float,
        exclude: set[str],
        segment: int | None,
        channel: str,
        g: Grid,
    ) -> set[str]:
        cfg = RecConfig(
            k=self.top_k,
            half_life_days=g.history_half_life_days,
            history=g.history,
            neighbours=g.neighbours,
            popular=g.popular,
        )
        model = self.models[g.model]
        recs = model.recommend(history, ts, exclude, segment, channel, blend=g.blend, config=cfg)
        return {r.item_id for r in recs}

    def report(self) -> dict[str, Any]:
        chosen = self.chosen or self.search.best()
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
            "similarity.blend": {
                "cooc": chosen.blend.cooc,
                "content": chosen.blend.content,
                "embedding": chosen.blend.embedding,
                "cooc_half_life_days": chosen.cooc_half_life_days,
                "history_half_life_days": chosen.history_half_life_days,
                "history": chosen.history,
                "cooc_shrinkage": chosen.cooc_shrinkage,
                "neighbours": chosen.neighbours,
                "popular": chosen.popular,
            },
            "similarity.tuning": {
                "days": self.tune_days,
                "purchases": self.tuning_purchases,
                "search": SEARCH,
                "grid": {
                    f"cooc_half_life={g.cooc_half_life_days},content={g.blend.content},"
                    f"embedding={g.blend.embedding},history_half_life={g.history_half_life_days},"
                    f"history={g.history},shrinkage={g.cooc_shrinkage},neighbours={g.neighbours},"
                    f"popular={g.popular}": {
                        "hr10": round(self.search.rate(g), 4),
                        "purchases": self.search.scored(g),
                    }
                    for g in self.search.configs
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
