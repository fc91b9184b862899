"""Personal recommendations: neighbours of a user's recent items, segment favourites, trending.

What it promises:

* :func:`recommend` never returns an item in ``exclude`` (already bought, dismissed) and never
  more than ``max_per_series`` parts of one series; it is a pure function of its arguments.
* Candidates are the blended-similarity neighbours of the user's recent items (each weighted by
  how strong and how recent the interaction was), plus the favourites of the user's segment
  and the items trending overall (:class:`Trending`); a user with no history (cold start) gets
  the favourites of their segment, then of their channel, then overall.
* Every recommendation says why, in words a marketer can read.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from models.catalog import CatalogEntry
from models.checkpoint import additive_setstate
from models.decay import Inflation
from models.embedding import ItemEmbedding
from models.similarity import (
    Blend,
    BlendedSimilarity,
    ContentSimilarity,
    CoOccurrence,
    InteractionWeights,
    pairs_for_event,
)
from schemas.vocabulary import DAY


@dataclass(frozen=True, slots=True)
class RecConfig:
    """How recommendations are assembled.

    ``history``: how many recent items are expanded; ``neighbours``: how many neighbours each;
    ``half_life_days``: how fast an old interaction stops counting; ``popular``: the weight of
    segment favourites and trending items against personal candidates (both scaled to [0, 1]).
    """

    k: int = 10
    history: int = 20
    neighbours: int = 30
    half_life_days: float = 60.0
    popular: float = 0.3
    max_per_series: int = 2
    __setstate__ = additive_setstate  # snapshots carry it: fields are only ever added, with defaults


@dataclass(frozen=True, slots=True)
class Recommendation:
    item_id: str
    score: float
    reason: str


class Trending:
    """Decayed popularity of items: overall, per segment and per channel (purchases weigh most).

    Examples
    --------
    >>> t = Trending(half_life_days=7)
    >>> for i, item in enumerate(["a", "a", "b"]):
    ...     t.learn_one({"item": item, "kind": "purchase", "ts": i * 60.0, "segment": 1, "channel": "app"})
    >>> t.top(2), t.top(1, segment=2), t.top(1, channel="web")  # unknown: overall
    (['a', 'b'], ['a'], ['a'])
    """

    def __init__(self, half_life_days: float = 7.0, weights: InteractionWeights | None = None) -> None:
        self.half_life_days = half_life_days
        self.weights = weights
        self._w = weights or InteractionWeights()
        self._inflation = Inflation(half_life_days * DAY)
        self.scores: dict[str, dict[str, float]] = {}
        self._tops: dict[str, list[tuple[float, str]]] = {}

    TOP = 100
    """Best items kept ranked per key, ascending by ``(score, item)``. Scores only grow between
    rescales (which keep their order), so an item can only enter the list when it is learned:
    the list stays exact, and a read of up to ``TOP`` items costs no scan of all items."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if "_tops" not in state:  # a snapshot from before the ranked lists: build them once
            self._tops = {key: self._ranked_row(row) for key, row in self.scores.items()}

    def _ranked_row(self, row: Mapping[str, float]) -> list[tuple[float, str]]:
        return sorted(heapq.nlargest(self.TOP, ((s, i) for i, s in row.items())))

    def _keep_ranked(self, key: str, item: str, before: float, after: float) -> None:
        top = self._tops.setdefault(key, [])
        if before:
            at = bisect.bisect_left(top, (before, item))
            if at < len(top) and top[at] == (before, item):
                del top[at]
        entry = (after, item)
        if len(top) < self.TOP:
            bisect.insort(top, entry)
        elif entry > top[0]:
            bisect.insort(top, entry)
            del top[0]

    def learn_one(self, x: Mapping[str, Any]) -> None:
        """Learn one interaction ``{"item", "kind", "ts", "progress"?, "segment"?, "channel"?}``."""
        weight = self._w.of(str(x["kind"]), float(x.get("progress") or 0.0))
        if weight <= 0:
            return
        inflated = weight * self._inflation.grow(float(x["ts"]), self._rescale)
        keys = ["*"]
        if x.get("segment") is not None:
            keys.append(f"s:{x['segment']}")
        if x.get("channel"):
            keys.append(f"c:{x['channel']}")
        item = str(x["item"])
        for key in keys:
            row = self.scores.setdefault(key, {})
            before = row.get(item, 0.0)
            row[item] = after = before + inflated
            self._keep_ranked(key, item, before, after)

    def _rescale(self, by: float) -> None:
        self.scores = {k: {i: s / by for i, s in v.items()} for k, v in self.scores.items()}
        self._tops = {k: sorted((self.scores[k][i], i) for _, i in top) for k, top in self._tops.items()}

    def ranked(
        self, k: int, segment: int | None = None, channel: str | None = None
    ) -> list[tuple[str, float]]:
        """The ``k`` best ``(item, share of the best score)``: the segment's, else the channel's,
        else overall (the first of those with any data)."""
        found = self._row(segment, channel)
        if found is None:
            return []
        best = self._best(*found, k, frozenset())
        top = best[0][1]
        return [(i, s / top) for i, s in best]

    def _row(self, segment: int | None, channel: str | None) -> tuple[str, dict[str, float]] | None:
        """The segment's scores, else the channel's, else overall: the first with any data."""
        for key in (
            f"s:{segment}" if segment is not None else None,
            f"c:{channel}" if channel else None,
            "*",
        ):
            row = self.scores.get(key) if key else None
            if key and row:
                return key, row
        return None

    def _best(
        self, key: str, row: Mapping[str, float], k: int, exclude: set[str] | frozenset[str]
    ) -> list[tuple[str, float]]:
        """The ``k`` best ``(item, score)`` of ``row`` not in ``exclude``: from the ranked list
        when it holds them, else by a scan."""
        ranked = self._tops.get(key, [])
        out: list[tuple[str, float]] = []
        for s, i in reversed(ranked):
            if i not in exclude:
                out.append((i, s))
                if len(out) == k:
                    return out
        if len(ranked) == len(row):
            return out  # the list is the whole row
        scored = ((i, s) for i, s in row.items() if i not in exclude)
        return heapq.nlargest(k, scored, key=lambda t: (t[1], t[0]))

    def top(
        self,
        k: int,
        segment: int | None = None,
        channel: str | None = None,
        exclude: set[str] | frozenset[str] = frozenset(),
    ) -> list[str]:
        """The ``k`` best items not in ``exclude`` (for a segment, else a channel, else overall)."""
        found = self._row(segment, channel)
        return [i for i, _ in self._best(*found, k, exclude)] if found is not None else []


def recommend(
    history: Sequence[tuple[str, float, float]],
    now: float,
    similarity: BlendedSimilarity,
    trending: Trending,
    exclude: set[str] | frozenset[str],
    catalog: Mapping[str, CatalogEntry],
    cfg: RecConfig | None = None,
    segment: int | None = None,
    channel: str | None = None,
    blend: Blend | None = None,
) -> list[Recommendation]:
    """The user's top recommendations, best first.

    ``history`` is the user's recent ``(item, weight, ts)``, oldest first.

    Examples
    --------
    >>> from models.similarity import CoOccurrence, ContentSimilarity
    >>> cat = {f"s-p{n}": CatalogEntry(f"part {n}", series_id="s", series_part=n) for n in (1, 2, 3)}
    >>> sim = BlendedSimilarity(CoOccurrence(), ContentSimilarity(cat))
    >>> recs = recommend([("s-p1", 5.0, 0.0)], 60.0, sim, Trending(), {"s-p1"}, cat)
    >>> [(r.item_id, r.reason) for r in recs]
    [('s-p2', 'similar to s-p1'), ('s-p3', 'similar to s-p1')]
    """
    cfg = cfg or RecConfig()
    personal: dict[str, float] = {}
    because: dict[str, tuple[float, str]] = {}
    recent = list(history)[-cfg.history :]
    # recency weights are relative to the newest history item: the personal scores are rescaled
    # by their best below, so this is the same ranking as ages from ``now``, without the weights
    # of a long-quiet user underflowing to zero
    newest = min(now, max((ts for _, _, ts in recent), default=now))
    for item, weight, ts in recent:
        strength = weight * math.pow(2.0, -max(0.0, newest - ts) / (cfg.half_life_days * DAY))
        for other, s in similarity.neighbours(item, cfg.neighbours, blend):
            if other in exclude or s <= 0:
                continue
            add = strength * s
            if add <= 0.0:
                continue  # an item old enough for its weight to underflow adds nothing
            personal[other] = personal.get(other, 0.0) + add
            if add > because.get(other, (0.0, ""))[0]:
                because[other] = (add, item)
    scores: dict[str, float] = {}
    reasons: dict[str, str] = {}
    top = max(personal.values(), default=0.0)
    for item, s in personal.items():
        scores[item] = s / top
        reasons[item] = f"similar to {because[item][1]}"
    weight = cfg.popular if personal else 1.0
    for source, ranked in (
        (
            "popular in your segment" if segment is not None else "popular on your channel",
            trending.ranked(cfg.k * 3, segment, channel),
        ),
        ("trending", trending.ranked(cfg.k * 3)),
    ):
        for item, share in ranked:
            if item in exclude:
                continue
            scores[item] = scores.get(item, 0.0) + weight * share
            reasons.setdefault(item, source)
        weight /= 2
    # the best few are enough unless the series cap skips many of them: then the full order
    few = heapq.nsmallest(4 * cfg.k, scores.items(), key=_best_first)
    out = _capped(few, catalog, cfg, reasons)
    if len(out) < cfg.k and len(few) < len(scores):
        out = _capped(sorted(scores.items(), key=_best_first), catalog, cfg, reasons)
    return out


def _best_first(t: tuple[str, float]) -> tuple[float, str]:
    return (-t[1], t[0])


def _capped(
    ordered: Sequence[tuple[str, float]],
    catalog: Mapping[str, CatalogEntry],
    cfg: RecConfig,
    reasons: Mapping[str, str],
) -> list[Recommendation]:
    """The first ``cfg.k`` of ``ordered`` with at most ``cfg.max_per_series`` parts of a series."""
    out: list[Recommendation] = []
    per_series: dict[str, int] = {}
    for item, s in ordered:
        series = catalog.get(item)
        sid = series.series_id if series is not None else None
        if sid is not None:
            if per_series.get(sid, 0) >= cfg.max_per_series:
                continue
            per_series[sid] = per_series.get(sid, 0) + 1
        out.append(Recommendation(item, round(s, 6), reasons[item]))
        if len(out) == cfg.k:
            break
    return out


def recent_interactions(
    item_views: Mapping[str, Sequence[float]],
    bought: Sequence[str],
    n: int = 20,
    weights: InteractionWeights | None = None,
) -> list[tuple[str, float, float]]:
    """A profile's most recent items as ``(item, weight, ts)``, oldest first (at most ``n``).

    The profile keeps view counts with the time of the last view or purchase, and the bought
    items: a bought item weighs as a purchase, a viewed one as a view per view (up to three).
    Bought items the profile has no time for (dropped from ``item_views``, or stored before
    purchases kept their time) come first, as the oldest.

    >>> recent_interactions({"a": [2, 10.0], "b": [1, 30.0]}, ["b", "c"])
    [('c', 5.0, 0.0), ('a', 2.0, 10.0), ('b', 5.0, 30.0)]
    """
    w = weights or InteractionWeights()
    out = {i: (w.view * min(3.0, float(c)), float(t)) for i, (c, t) in item_views.items()}
    for i in bought:
        out[i] = (w.purchase, out.get(i, (0.0, 0.0))[1])
    newest = heapq.nlargest(n, out.items(), key=lambda kv: (kv[1][1], kv[0]))
    return [(i, wt, t) for i, (wt, t) in reversed(newest)]


class Recommender:
    """The shared similarity model a learner trains and every worker serves from.

    Learns from samples that carry the user's recent items (computed where the user lives,
    :func:`recent_interactions`), so it keeps no per-user data: erasing a user needs nothing
    from it. The catalog is attached by the process that serves (it is not part of a snapshot).

    Parameters
    ----------
    cooc
        The co-occurrence model (fan-out, half-life, shrinkage).
    embedding
        River's item-to-item factorisation (:class:`models.embedding.ItemEmbedding`); it learns
        whatever the blend, so that ``nba evaluate`` can fit its weight.
    trending
        Decayed popularity, overall, per segment and per channel.
    blend
        The served blend of co-occurrence and content similarity.
    config
        How recommendations are assembled.

    Examples
    --------
    >>> r = Recommender()
    >>> for u in range(10):
    ...     r.learn_one({"item": "a", "kind": "purchase", "ts": u * 60.0, "recent": []})
    ...     r.learn_one({"item": "b", "kind": "purchase", "ts": u * 60.0 + 1, "recent": [["a", 5.0]]})
    >>> r.similar("a", 1)[0][0], r.n_learned
    ('b', 20)
    >>> [x.item_id for x in r.recommend([("a", 5.0, 600.0)], 601.0, exclude={"a"})][:1]
    ['b']
    """

    SNAPSHOT_FORMAT = 2
    """1: before the event-time inflation helper and the factorisation (not readable here)."""

    def __init__(
        self,
        cooc: CoOccurrence | None = None,
        trending: Trending | None = None,
        blend: Blend | None = None,
        config: RecConfig | None = None,
        embedding: ItemEmbedding | None = None,
    ) -> None:
        self.cooc = cooc
        self.trending = trending
        self.blend = blend
        self.config = config
        self.embedding = embedding
        self._cooc = cooc or CoOccurrence()
        self._embedding = embedding or ItemEmbedding()
        self._trending = trending or Trending()
        self._catalog: Mapping[str, CatalogEntry] = {}
        self._similarity: BlendedSimilarity | None = None
        self.n_learned = 0

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_catalog"], state["_similarity"] = {}, None  # served state, rebuilt on attach
        return state

    def serve_with(self, blend: Blend | None, config: RecConfig | None) -> Recommender:
        """Serve with this blend and recommendation config (what a worker's settings say now,
        whatever the snapshot was trained with: neither changes what is learned)."""
        self.blend, self.config, self._similarity = blend, config, None
        return self

    def attach(self, catalog: Mapping[str, CatalogEntry]) -> Recommender:
        """Serve with ``catalog`` (kept by reference: items added later are seen)."""
        if catalog is not self._catalog:
            self._catalog = catalog
            self._similarity = None
        return self

    @property
    def similarity(self) -> BlendedSimilarity:
        if self._similarity is None:
            self._similarity = BlendedSimilarity(
                self._cooc, ContentSimilarity(self._catalog), self.blend, self._embedding
            )
        return self._similarity

    def learn_one(self, x: Mapping[str, Any], *, embedding: bool = True) -> None:
        """Learn one interaction ``{"item", "kind", "ts", "progress"?, "segment"?, "channel"?,
        "recent": [[item, weight], ...]}`` (``embedding=False``: not by the factorisation, for
        models sharing one that another trains)."""
        kind, item, ts = str(x["kind"]), str(x["item"]), float(x["ts"])
        weight = self._cooc._w.of(kind, float(x.get("progress") or 0.0))
        if weight <= 0:
            return
        recent = [(str(i), float(w)) for i, w in x.get("recent") or ()][-self._cooc.fan_out :]
        self._cooc.learn_pairs(item, weight, ts, pairs_for_event(recent, item, weight, ts))
        if embedding:
            self._embedding.learn_one(item, [i for i, _ in recent])
        self._trending.learn_one(x)
        self.n_learned += 1

    def similar(self, item: str, k: int = 10) -> list[tuple[str, float]]:
        return self.similarity.neighbours(item, k)

    def recommend(
        self,
        history: Sequence[tuple[str, float, float]],
        now: float,
        exclude: set[str] | frozenset[str] = frozenset(),
        segment: int | None = None,
        channel: str | None = None,
        k: int | None = None,
        blend: Blend | None = None,
        config: RecConfig | None = None,
    ) -> list[Recommendation]:
        """The user's recommendations (``blend`` and ``config`` override the configured ones,
        for tuning)."""
        cfg = config or self.config or RecConfig()
        if k is not None:
            cfg = replace(cfg, k=k)
        sim, trending, catalog = self.similarity, self._trending, self._catalog
        return recommend(
            history, now, sim, trending, exclude, catalog, cfg, segment, channel, blend or self.blend
        )

    def changed_since(self, versions: Mapping[str, int]) -> dict[str, int]:
        """Items whose co-occurrence row changed since ``versions`` (item -> row version), with
        their current versions: what a publisher of neighbour lists must rewrite."""
        return {i: v for i, v in self._cooc.row_updates.items() if versions.get(i) != v}

    def top(
        self,
        k: int,
        segment: int | None = None,
        channel: str | None = None,
        exclude: set[str] | frozenset[str] = frozenset(),
    ) -> list[str]:
        """The trending items not in ``exclude`` (for a segment, else a channel, else overall)."""
        return self._trending.top(k, segment, channel, exclude)
