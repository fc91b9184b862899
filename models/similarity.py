"""Item similarity learned online: co-occurrence in users' recent histories, and content.

What it promises:

* :class:`CoOccurrence` is an incremental item-item cosine with shrinkage. Each interaction
  (view, completed view, share, purchase; weighted by :class:`InteractionWeights`) pairs the
  item with the user's last ``fan_out`` distinct items, so the cost of one event is bounded by
  ``fan_out`` pair updates whatever the history. Recent events weigh more: every count decays
  with ``half_life_days`` of event time (kept as a global inflation factor, so nothing is
  rewritten as time passes), so a replayed day learns what a lived one does.
* The user side (:func:`pairs_for_event`, from the user's recent items) and the item side
  (:meth:`CoOccurrence.learn_pairs`) are separate, so that a worker can compute pairs where
  the user lives and apply them where the item lives; :meth:`CoOccurrence.learn_one` does both
  in a plain loop, keeping the recent items itself (user data: :meth:`forget_user` erases it).
* :class:`ContentSimilarity` scores items from the catalog (series, next part, category, tags),
  so a new item with no interactions has neighbours from its first day.
* :class:`BlendedSimilarity` serves ``w_cooc * cooc + w_content * content + w_embedding *
  embedding`` (the last from :class:`models.embedding.ItemEmbedding`, River's factorisation;
  content alone for an item with no co-occurrence yet); the weights are fitted by
  ``nba evaluate`` on a held-out period and shipped as configuration.
"""

from __future__ import annotations

import heapq
import math
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from models.catalog import CatalogEntry
from models.checkpoint import additive_setstate
from models.decay import Inflation
from models.embedding import ItemEmbedding
from schemas.vocabulary import DAY


@dataclass(frozen=True, slots=True)
class InteractionWeights:
    """How much one interaction of each kind says about a user's taste."""

    click: float = 0.5
    view: float = 1.0
    completed_view: float = 2.0
    share: float = 3.0
    purchase: float = 5.0
    completed_progress: float = 0.9
    __setstate__ = additive_setstate  # snapshots carry it: fields are only ever added, with defaults

    def of(self, kind: str, progress: float = 0.0) -> float:
        """The weight of one interaction.

        >>> InteractionWeights().of("view", 0.95), InteractionWeights().of("purchase")
        (2.0, 5.0)
        """
        if kind == "view":
            return self.completed_view if progress >= self.completed_progress else self.view
        return float(getattr(self, kind, 0.0)) if kind in ("click", "share", "purchase") else 0.0


@dataclass(frozen=True, slots=True)
class Pair:
    """One co-occurrence to add: ``item`` seen with ``other``, with ``weight`` at event time ``ts``."""

    item: str
    other: str
    weight: float
    ts: float


def pairs_for_event(recent: Iterable[tuple[str, float]], item: str, weight: float, ts: float) -> list[Pair]:
    """The co-occurrences one interaction adds, from the user's recent ``(item, weight)`` list.

    The weight of a pair is the geometric mean of the two interactions' weights, so a pair of
    purchases counts as much as two purchases of one item.

    >>> [(p.item, p.other, p.weight) for p in pairs_for_event([("a", 1.0), ("b", 4.0)], "c", 4.0, 0.0)]
    [('c', 'a', 2.0), ('c', 'b', 4.0)]
    """
    return [Pair(item, other, math.sqrt(weight * w), ts) for other, w in recent if other != item]


class CoOccurrence:
    """Incremental item-item cosine similarity with shrinkage, on decayed co-occurrence.

    ``similarity(i, j) = C(i, j) / (sqrt(N(i) * N(j)) + shrinkage)``, where ``N(i)`` is the
    decayed weight of interactions with ``i`` and ``C(i, j)`` that of their co-occurrences in one
    user's recent items (each pair counted from the later event's side).

    Parameters
    ----------
    fan_out
        How many of a user's most recent distinct items each event pairs with.
    half_life_days
        Event-time half-life of every count.
    shrinkage
        Pulls the similarity of rarely seen pairs towards zero (in units of decayed weight).
    weights
        Weights of the kinds of interaction.
    max_row
        Co-occurrence entries kept per item: a row that grows past one and a half times this
        drops its weakest entries, which bounds memory and the cost of a neighbour scan (an
        entry dropped from one row may remain in the other: the pair's score is read from the
        row of the item asked about).

    Examples
    --------
    >>> sim = CoOccurrence(fan_out=5, shrinkage=1.0)
    >>> for u in range(20):
    ...     sim.learn_one({"user": f"u{u}", "item": "a", "kind": "purchase", "ts": u * 60.0})
    ...     sim.learn_one({"user": f"u{u}", "item": "b", "kind": "purchase", "ts": u * 60.0 + 1})
    ...     sim.learn_one({"user": f"u{u}", "item": f"x{u}", "kind": "view", "ts": u * 60.0 + 2})
    >>> sim.similarity("a", "b") > 0.5 > sim.similarity("a", "x3")
    True
    >>> sim.neighbours("a", 1)[0][0]
    'b'
    """

    def __init__(
        self,
        fan_out: int = 20,
        half_life_days: float = 30.0,
        shrinkage: float = 5.0,
        weights: InteractionWeights | None = None,
        max_row: int = 300,
    ) -> None:
        self.fan_out = fan_out
        self.max_row = max_row
        self.half_life_days = half_life_days
        self.shrinkage = shrinkage
        self.weights = weights
        self._w = weights or InteractionWeights()
        self._inflation = Inflation(half_life_days * DAY)
        self.counts: dict[str, float] = {}
        self.pairs: dict[str, dict[str, float]] = {}
        self._recent: dict[str, OrderedDict[str, tuple[float, float]]] = {}
        self._latest = 0.0
        self.n_events = 0
        self.row_updates: dict[str, int] = {}
        """How many times each item's row changed (what cached neighbour lists are checked against)."""
        self._top: dict[str, tuple[int, int, list[tuple[str, float]]]] = {}

    # -- time decay as a global inflation factor (models.decay.Inflation) -----------------
    def _renormalise(self, by: float) -> None:
        self._top.clear()
        self.counts = {i: c / by for i, c in self.counts.items()}
        self.pairs = {i: {j: c / by for j, c in row.items()} for i, row in self.pairs.items()}

    def _shrink(self) -> float:
        """The shrinkage in the counts' current units (the factor of the newest event time)."""
        return self.shrinkage * self._inflation.at(self._latest)

    # -- learning ---------------------------------------------------------------------------
    def learn_one(self, x: Mapping[str, Any]) -> None:
        """Learn one interaction ``{"user", "item", "kind", "ts", "progress"?}``."""
        weight = self._w.of(str(x["kind"]), float(x.get("progress") or 0.0))
        if weight <= 0:
            return
        user, item, ts = str(x["user"]), str(x["item"]), float(x["ts"])
        recent = self._recent.setdefault(user, OrderedDict())
        self.learn_pairs(
            item, weight, ts, pairs_for_event(((j, w) for j, (w, _) in recent.items()), item, weight, ts)
        )
        before = recent.pop(item, (0.0, ts))
        recent[item] = (max(before[0], weight), max(before[1], ts))
        while len(recent) > self.fan_out:
            recent.popitem(last=False)

    def learn_pairs(self, item: str, weight: float, ts: float, pairs: Iterable[Pair]) -> None:
        """Apply one interaction with ``item`` and the co-occurrences it made (the item side)."""
        scale = self._inflation.grow(ts, self._renormalise)
        self._latest = max(self._latest, ts)
        self.counts[item] = self.counts.get(item, 0.0) + weight * scale
        updates = self.row_updates
        updates[item] = updates.get(item, 0) + 1
        for p in pairs:
            add = p.weight * scale
            row = self.pairs.setdefault(p.item, {})
            row[p.other] = row.get(p.other, 0.0) + add
            back = self.pairs.setdefault(p.other, {})
            back[p.item] = back.get(p.item, 0.0) + add
            updates[p.other] = updates.get(p.other, 0) + 1
            if len(back) > self.max_row * 1.5:
                self._trim(p.other)
        if len(self.pairs.get(item, ())) > self.max_row * 1.5:
            self._trim(item)
        self.n_events += 1

    def _trim(self, item: str) -> None:
        row = self.pairs[item]
        keep = heapq.nlargest(self.max_row, row.items(), key=lambda t: (t[1], t[0]))
        self.pairs[item] = dict(keep)

    def recent_items(self, user: str) -> list[tuple[str, float, float]]:
        """The user's recent ``(item, weight, ts)``, oldest first (what recommendations start from)."""
        return [(i, w, t) for i, (w, t) in self._recent.get(user, {}).items()]

    def forget_user(self, user: str) -> None:
        """Erase the user's recent items (the counts keep only aggregates over users)."""
        self._recent.pop(user, None)

    # -- reading ----------------------------------------------------------------------------
    def similarity(self, i: str, j: str) -> float:
        c = self.pairs.get(i, {}).get(j, 0.0)
        return _cosine(c, self.counts.get(i, 0.0), self.counts.get(j, 0.0), self._shrink()) if c > 0 else 0.0

    def neighbours(self, item: str, k: int = 10) -> list[tuple[str, float]]:
        """The ``k`` most similar items, best first.

        The list is cached per item and recomputed once the item's row has changed
        ``max(1, len(row) // 20)`` times since (the neighbours' own counts move the scores a
        little between recomputations), so a read costs a lookup, not a scan of the row."""
        row = self.pairs.get(item)
        if not row:
            return []
        version = self.row_updates.get(item, 0)
        cached = self._top.get(item)
        if cached is not None and cached[1] >= k and version - cached[0] < max(1, len(row) // 20):
            return cached[2][:k]
        width = max(k, 50, cached[1] if cached is not None else 0)  # as wide as any caller asked
        top = self._scan(item, row, width)
        self._top[item] = (version, width, top)
        return top[:k]

    def list_version(self, item: str) -> int:
        """The row version the item's cached neighbour list was computed at (-1: none)."""
        cached = self._top.get(item)
        return cached[0] if cached is not None else -1

    def _scan(self, item: str, row: dict[str, float], k: int) -> list[tuple[str, float]]:
        shrink, ni, counts = self._shrink(), self.counts.get(item, 0.0), self.counts
        scored = ((j, _cosine(c, ni, counts.get(j, 0.0), shrink)) for j, c in row.items())
        return heapq.nlargest(k, scored, key=lambda t: (t[1], t[0]))


def _cosine(pair: float, ni: float, nj: float, shrink: float) -> float:
    """Cosine of two items from their co-occurrence and counts, shrunk towards zero."""
    return pair / (math.sqrt(ni * nj) + shrink)


class ContentSimilarity:
    """Similarity from the catalog: series (the next part most), category and tags.

    Parameters
    ----------
    catalog
        Item id to catalog entry; kept by reference, so items added later are seen.
    series, next_part, category, tags
        The score of sharing a series, of being the next part of it, of sharing a category,
        and the weight of the tags' Jaccard overlap.

    Examples
    --------
    >>> cat = {
    ...     "s1-p1": CatalogEntry("a", category="math", series_id="s1", series_part=1),
    ...     "s1-p2": CatalogEntry("b", category="math", series_id="s1", series_part=2),
    ...     "e1": CatalogEntry("c", category="math"),
    ...     "e2": CatalogEntry("d", category="art"),
    ... }
    >>> [j for j, _ in ContentSimilarity(cat).neighbours("s1-p1", 3)]
    ['s1-p2', 'e1']
    """

    def __init__(
        self,
        catalog: Mapping[str, CatalogEntry],
        series: float = 0.5,
        next_part: float = 0.3,
        category: float = 0.2,
        tags: float = 0.2,
    ) -> None:
        self.catalog = catalog
        self.series = series
        self.next_part = next_part
        self.category = category
        self.tags = tags
        self._by_key: dict[str, set[str]] = {}
        self._indexed = 0
        self._top: dict[str, list[tuple[str, float]]] = {}

    def _index(self) -> None:
        if self._indexed == len(self.catalog):
            return
        self._by_key = {}
        self._top = {}
        for item, e in self.catalog.items():
            for key in (
                f"s:{e.series_id}" if e.series_id else None,
                f"c:{e.category}" if e.category else None,
            ):
                if key:
                    self._by_key.setdefault(key, set()).add(item)
        self._indexed = len(self.catalog)

    def similarity(self, i: str, j: str) -> float:
        a, b = self.catalog.get(i), self.catalog.get(j)
        if a is None or b is None or i == j:
            return 0.0
        score = 0.0
        if a.series_id and a.series_id == b.series_id:
            score += self.series
            if a.series_part is not None and b.series_part == a.series_part + 1:
                score += self.next_part
        if a.category and a.category == b.category:
            score += self.category
        if a.tags and b.tags:
            ta, tb = set(a.tags), set(b.tags)
            score += self.tags * len(ta & tb) / len(ta | tb)
        return score

    @property
    def version(self) -> int:
        """Changes when the catalog does (cached neighbour lists are checked against it)."""
        self._index()
        return self._indexed

    def neighbours(self, item: str, k: int = 10) -> list[tuple[str, float]]:
        self._index()
        cached = self._top.get(item)
        if cached is not None and (len(cached) >= k or len(cached) < 50):
            return cached[:k]
        self._top[item] = top = self._scan(item, max(k, 50))
        return top[:k]

    def _scan(self, item: str, k: int) -> list[tuple[str, float]]:
        e = self.catalog.get(item)
        if e is None:
            return []
        candidates: set[str] = set()
        for key in (f"s:{e.series_id}" if e.series_id else None, f"c:{e.category}" if e.category else None):
            if key:
                candidates |= self._by_key.get(key, set())
        candidates.discard(item)
        scored = ((j, self.similarity(item, j)) for j in candidates)
        return heapq.nlargest(k, (t for t in scored if t[1] > 0), key=lambda t: (t[1], t[0]))


@dataclass(frozen=True, slots=True)
class Blend:
    """The weights of the served similarity (fitted by ``nba evaluate``)."""

    cooc: float = 1.0
    content: float = 0.0
    embedding: float = 0.0
    __setstate__ = additive_setstate  # snapshots from before a weight existed restore it as 0


class BlendedSimilarity:
    """``blend.cooc * cooc + blend.content * content + blend.embedding * embedding``, over the
    models' neighbours; an item with no co-occurrence yet gets its content neighbours even when
    the content weight is 0.

    Examples
    --------
    >>> cat = {"p1": CatalogEntry("a", category="x", series_id="s", series_part=1),
    ...        "p2": CatalogEntry("b", category="x", series_id="s", series_part=2)}
    >>> sim = BlendedSimilarity(CoOccurrence(), ContentSimilarity(cat))
    >>> sim.neighbours("p1", 5)  # no interactions yet: the content says part 2
    [('p2', 1.0)]
    """

    def __init__(
        self,
        cooc: CoOccurrence,
        content: ContentSimilarity,
        blend: Blend | None = None,
        embedding: ItemEmbedding | None = None,
    ) -> None:
        self.cooc = cooc
        self.content = content
        self.blend = blend or Blend()
        self.embedding = embedding
        self._top: dict[tuple[str, Blend], tuple[tuple[int, int, int], int, list[tuple[str, float]]]] = {}
        self._width: dict[str, int] = {}

    def neighbours(self, item: str, k: int = 10, blend: Blend | None = None) -> list[tuple[str, float]]:
        """The ``k`` best blended neighbours (cached until a model's list for ``item`` changes)."""
        b = blend or self.blend
        width = max(k, 10, self._width.get(item, 0))  # as wide as any caller asked: one list serves all
        self._width[item] = width
        n = 4 * width
        cooc = self.cooc.neighbours(item, n) if b.cooc else []  # refreshes its list when due
        if b.cooc and not cooc:  # no co-occurrence yet (a new item): its content alone
            b = replace(b, content=b.content or 1.0)
        if not b.content and not (b.embedding and self.embedding):  # co-occurrence alone: its order
            return [(j, round(b.cooc * s, 12)) for j, s in cooc[:k]]
        stamp = (
            self.cooc.list_version(item),
            self.content.version,
            self.embedding.version if b.embedding and self.embedding else 0,
        )
        cached = self._top.get((item, b))
        if cached is not None and cached[0] == stamp and cached[1] >= k:
            return cached[2][:k]  # checked before the other models' lists are read
        content = self.content.neighbours(item, n) if b.content else []
        learned = self.embedding.neighbours(item, n) if b.embedding and self.embedding else []
        scores: dict[str, float] = {}
        for j, s in cooc:
            scores[j] = b.cooc * s
        for j, s in content:
            scores[j] = scores.get(j, 0.0) + b.content * s
        for j, s in learned:
            scores[j] = scores.get(j, 0.0) + b.embedding * s
        top = heapq.nlargest(
            width, ((j, round(s, 12)) for j, s in scores.items()), key=lambda t: (t[1], t[0])
        )
        self._top[(item, b)] = (stamp, width, top)
        return top[:k]
