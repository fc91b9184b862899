"""Online item similarity (models.similarity), recommendations (models.recommend) and the batch
item-kNN reference of the evaluation (lab.itemknn_ref)."""

from __future__ import annotations

import heapq
import pickle
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lab.itemknn_ref import ItemKNNReference, Target
from models.catalog import CatalogEntry
from models.recommend import RecConfig, Trending, recommend
from models.similarity import DAY, Blend, BlendedSimilarity, ContentSimilarity, CoOccurrence, pairs_for_event

ITEMS = [f"i{n}" for n in range(30)]


def _stream(sim: CoOccurrence, users: int, seed: int = 0) -> None:
    """Users buy "a" and "b" together, and view random other items."""
    rng = random.Random(seed)
    for u in range(users):
        t = u * 600.0
        for item in rng.sample(ITEMS, 3):
            sim.learn_one({"user": f"u{u}", "item": item, "kind": "view", "ts": t})
            t += 10
        sim.learn_one({"user": f"u{u}", "item": "a", "kind": "purchase", "ts": t + 1})
        sim.learn_one({"user": f"u{u}", "item": "b", "kind": "purchase", "ts": t + 2})


def test_items_bought_together_become_more_similar_than_unrelated_ones() -> None:
    sim = CoOccurrence(fan_out=10)
    _stream(sim, users=40)
    together = sim.similarity("a", "b")
    unrelated = max(sim.similarity("a", i) for i in ITEMS)
    assert together > 2 * unrelated and together > 0.5
    assert sim.neighbours("a", 1)[0][0] == "b" and sim.neighbours("b", 1)[0][0] == "a"
    assert sim.similarity("a", "b") == sim.similarity("b", "a")


def test_a_new_item_gets_neighbours_from_its_content() -> None:
    catalog = {i: CatalogEntry(i, category="math" if i < "i5" else "art") for i in ITEMS}
    catalog["s-p1"] = CatalogEntry("part 1", category="math", series_id="s", series_part=1)
    catalog["new"] = CatalogEntry("part 2", category="math", series_id="s", series_part=2)
    cooc = CoOccurrence()
    _stream(cooc, users=20)
    sim = BlendedSimilarity(cooc, ContentSimilarity(catalog))
    assert cooc.neighbours("new") == []  # no interaction yet
    neighbours = sim.neighbours("new", 5)
    assert neighbours[0][0] == "s-p1"  # same series first
    assert all(catalog[j].category == "math" for j, _ in neighbours)
    # even when the fitted blend gives content no weight, a new item is served by its content
    only_cooc = BlendedSimilarity(cooc, ContentSimilarity(catalog), Blend(cooc=1.0, content=0.0))
    assert only_cooc.neighbours("new", 1)[0][0] == "s-p1"
    assert [j for j, _ in only_cooc.neighbours("a", 3)] == [j for j, _ in cooc.neighbours("a", 3)]


def test_the_cost_of_one_event_is_bounded_by_the_fan_out() -> None:
    sim = CoOccurrence(fan_out=5)
    for n, item in enumerate(ITEMS):
        sim.learn_one({"user": "u", "item": item, "kind": "view", "ts": n * 60.0})
    assert len(sim.recent_items("u")) == 5
    # the last item paired with the 5 before it, not with all 29
    assert len(sim.pairs[ITEMS[-1]]) == 5


def test_old_co_occurrences_fade_with_event_time() -> None:
    sim = CoOccurrence(fan_out=5, half_life_days=7, shrinkage=0.0)
    for u in range(10):  # a and b together, long ago; then a and c together, recently
        sim.learn_one({"user": f"old{u}", "item": "a", "kind": "purchase", "ts": 0.0})
        sim.learn_one({"user": f"old{u}", "item": "b", "kind": "purchase", "ts": 1.0})
        sim.learn_one({"user": f"new{u}", "item": "a", "kind": "purchase", "ts": 60 * DAY})
        sim.learn_one({"user": f"new{u}", "item": "c", "kind": "purchase", "ts": 60 * DAY + 1})
    assert sim.similarity("a", "c") > 10 * sim.similarity("a", "b")


def test_learning_is_seeded_free_picklable_and_user_data_is_erasable() -> None:
    one, two = CoOccurrence(), CoOccurrence()
    _stream(one, users=15)
    _stream(two, users=15)
    assert one.pairs == two.pairs  # no randomness: the same stream learns the same model
    clone = pickle.loads(pickle.dumps(one))
    assert clone.neighbours("a", 3) == one.neighbours("a", 3)
    one.forget_user("u3")
    assert one.recent_items("u3") == [] and clone.recent_items("u3") != []


def test_pairs_are_the_geometric_mean_of_the_two_weights() -> None:
    pairs = pairs_for_event([("a", 1.0), ("x", 9.0)], "x", 4.0, 5.0)
    assert [(p.item, p.other, p.weight, p.ts) for p in pairs] == [("x", "a", 2.0, 5.0)]


CATALOG = {
    **{
        f"s{s}-p{n}": CatalogEntry("p", category="c", series_id=f"s{s}", series_part=n)
        for s in range(3)
        for n in (1, 2, 3, 4)
    },
    **{i: CatalogEntry(i, category="c") for i in ITEMS},
}


def _trained() -> tuple[BlendedSimilarity, Trending]:
    cooc, trending = CoOccurrence(fan_out=10), Trending()
    rng = random.Random(3)
    for u in range(60):
        for n, item in enumerate(rng.sample(sorted(CATALOG), 6)):
            x = {"user": f"u{u}", "item": item, "kind": rng.choice(["view", "purchase"]), "ts": u * 600.0 + n}
            cooc.learn_one(x)
            trending.learn_one({**x, "segment": u % 3, "channel": "app"})
    return BlendedSimilarity(cooc, ContentSimilarity(CATALOG)), trending


SIM, TRENDING = _trained()


@settings(max_examples=60, deadline=None)
@given(
    history=st.lists(st.sampled_from(sorted(CATALOG)), max_size=12),
    excluded=st.sets(st.sampled_from(sorted(CATALOG)), max_size=20),
    segment=st.one_of(st.none(), st.integers(0, 4)),
    per_series=st.integers(1, 3),
)
def test_recommendations_exclude_bought_and_dismissed_items_and_stay_diverse(
    history: list[str], excluded: set[str], segment: int | None, per_series: int
) -> None:
    cfg = RecConfig(k=10, max_per_series=per_series)
    recs = recommend(
        [(item, 3.0, 36_000.0 + n) for n, item in enumerate(history)],
        40_000.0,
        SIM,
        TRENDING,
        excluded,
        CATALOG,
        cfg,
        segment=segment,
        channel="app",
    )
    ids = [r.item_id for r in recs]
    assert not set(ids) & excluded
    assert len(ids) == len(set(ids)) <= 10
    series = [CATALOG[i].series_id for i in ids if CATALOG[i].series_id]
    assert all(series.count(s) <= per_series for s in series)
    assert all(r.reason for r in recs)
    assert [r.score for r in recs] == sorted((r.score for r in recs), reverse=True)


def test_a_user_with_no_history_gets_their_segment_favourites() -> None:
    trending = Trending()
    for n in range(5):
        trending.learn_one(
            {"item": "seg-fav", "kind": "purchase", "ts": float(n), "segment": 1, "channel": "app"}
        )
        trending.learn_one(
            {"item": "all-fav", "kind": "purchase", "ts": float(n), "segment": 2, "channel": "web"}
        )
        trending.learn_one(
            {"item": "all-fav", "kind": "purchase", "ts": float(n), "segment": 2, "channel": "web"}
        )
    recs = recommend([], 10.0, SIM, trending, set(), CATALOG, segment=1)
    assert recs[0].item_id == "seg-fav" and recs[0].reason == "popular in your segment"
    on_channel = recommend([], 10.0, SIM, trending, set(), CATALOG, channel="web")
    assert on_channel[0].item_id == "all-fav" and on_channel[0].reason == "popular on your channel"


def test_the_item_knn_reference_recommends_what_was_bought_together() -> None:
    interactions = []
    targets = []
    for u in range(30):
        t = u * 3600.0
        interactions.append((t, f"u{u}", "a", "purchase", 5.0))
        interactions.append((t + 1, f"u{u}", "b", "purchase", 5.0))
        interactions.append((t + 2, f"u{u}", f"x{u}", "view", 1.0))
    for u in range(30, 40):  # day 2: users who bought "a" go on to buy "b"
        t = DAY + u * 60.0
        interactions.append((t, f"u{u}", "a", "purchase", 5.0))
        targets.append(Target(t + 1, f"u{u}", "b", frozenset({"a"})))
    report = ItemKNNReference(top_k=1, tune_days=1).run(interactions, targets)
    assert report["hr10"] == 1.0


def test_the_item_knn_reference_tunes_how_much_of_the_history_it_ranks_from() -> None:
    """The newest items point to what is bought next; more older items point elsewhere: only a
    reference that tunes its history length finds it (a whole-history kNN ranks "s" first)."""
    interactions = []
    targets = []
    old, new = [f"r{n}" for n in range(6)], ["p0", "p1", "p2"]
    for u in range(40):  # day 0: two groups of items bought together
        t, group = u * 600.0, ([*new, "q"] if u % 2 else [*old, "s"])
        interactions.extend((t + n, f"u{u}", item, "purchase", 5.0) for n, item in enumerate(group))
    for u in range(40, 60):  # days 1 (tuning) and 2: old interests first, then the new ones
        t = DAY * (1 + (u >= 50)) + u * 600.0
        history = [*old, *new]
        interactions.extend((t + n, f"u{u}", item, "view", 1.0) for n, item in enumerate(history))
        targets.append(Target(t + 100, f"u{u}", "q", frozenset()))
    report = ItemKNNReference(top_k=1, tune_days=2).run(interactions, targets)
    assert report["tuning"]["chosen"]["history"] == 3
    assert report["hr10"] == 1.0


def test_the_online_grid_drops_content_weights_when_there_is_no_catalog() -> None:
    from lab.similarity_eval import SimilarityRecorder

    rec = SimilarityRecorder({})
    assert any(g.blend.content for g in rec.search.alive)
    rec.purchase("u1", "a", 0.0, set(), [], None, "web")
    assert rec.search.alive and not any(g.blend.content for g in rec.search.alive)
    assert {(g.history, g.neighbours) for g in rec.search.alive} == {(3, 300), (20, 30)}
    assert {g.cooc_shrinkage for g in rec.search.alive} == {5.0, 50.0}


def test_a_loaded_snapshot_is_served_with_this_processs_blend_and_config() -> None:
    from app.model_store import ModelStore
    from app.rules import setup
    from app.settings import Settings
    from models import checkpoint
    from models.recommend import Recommender

    trained = Recommender(blend=Blend(cooc=1.0, content=0.5), config=RecConfig(k=3))
    blob = checkpoint.encode(trained, {"model": "similarity", "offset": 1})
    settings = Settings(similarity={"content_weight": 0.2, "embedding_weight": 0.1, "top_k": 7})
    store = ModelStore("nba.models", {}, prepare=setup(settings).serve)
    store.apply(b"similarity", blob, 0)
    served = store.models["similarity"]
    assert served.blend == Blend(cooc=1.0, content=0.2, embedding=0.1) and served.config.k == 7
    assert served.similarity.blend == served.blend


def test_a_user_who_buys_without_viewing_gets_recommendations_from_their_purchases() -> None:
    """A purchase through a WeChat or Weibo link often has no view before it: the profile keeps
    the purchase's own time, and the recommender seeds from it (it used to give such an item the
    time 0.0, whose recency weight underflows, and then divided by a zero best score)."""
    from models.facts import EventFacts
    from models.profile import Profile, apply_event
    from models.recommend import Recommender
    from models.user_step import recommendations_for

    t0 = 1_780_000_000.0  # 2026: ages from the epoch underflow 2 ** -(age / half-life)
    model = Recommender()
    for u in range(20):  # buyers of "a" then buy "b"; buyers of "x" then buy "y"
        for first, then in (("a", "b"), ("x", "y")):
            model.learn_one({"item": first, "kind": "purchase", "ts": t0 + u, "recent": []})
            model.learn_one({"item": then, "kind": "purchase", "ts": t0 + u + 1, "recent": [[first, 5.0]]})
    profile = Profile("u:1")
    for n, item in enumerate(("x", "a")):  # bought "x", then 30 days later "a": never viewed
        buy = EventFacts(f"e{n}", "purchase", "wechat", t0 + n * 30 * DAY, item_id=item, spend=9.0)
        apply_event(profile, buy)
    assert {i: t for i, (_, t) in profile.item_views.items()} == {"x": t0, "a": t0 + 30 * DAY}
    assert all(count == 0 for count, _ in profile.item_views.values())  # a purchase is no view
    recs = recommendations_for(profile, t0 + 31 * DAY, model, 20, "wechat")
    assert [(r.item_id, r.reason) for r in recs[:2]] == [("b", "similar to a"), ("y", "similar to x")]


def test_recency_weights_do_not_underflow_for_a_long_quiet_user() -> None:
    """Ages are taken from the newest history item: a user quiet for years still gets their own
    neighbours, ranked as if ages were taken from ``now``."""
    history = [("s0-p1", 5.0, 0.0), ("i3", 1.0, 10 * DAY)]
    cfg = RecConfig(half_life_days=1.0)
    long_after = recommend(history, 10 * DAY + 50 * 365 * DAY, SIM, TRENDING, {"s0-p1", "i3"}, CATALOG, cfg)
    right_after = recommend(history, 10 * DAY, SIM, TRENDING, {"s0-p1", "i3"}, CATALOG, cfg)
    assert [(r.item_id, r.reason) for r in long_after] == [(r.item_id, r.reason) for r in right_after]
    assert any(r.reason.startswith("similar to") for r in long_after)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_trending_s_kept_ranking_equals_a_scan_of_every_item_through_rescales(seed: int) -> None:
    rng = random.Random(seed)
    t = Trending(half_life_days=0.05)  # a short half-life: the counters rescale many times
    t.TOP = 15
    items = [f"i{n}" for n in range(60)]
    for n in range(3000):
        t.learn_one(
            {
                "item": rng.choices(items, weights=[1 / (k + 1) for k in range(60)])[0],
                "kind": rng.choice(["view", "purchase", "click"]),
                "ts": n * 120.0,
                "segment": rng.randrange(3),
            }
        )
        if n % 97 == 96:
            for seg in (None, 0, 1):
                row = t.scores[f"s:{seg}" if seg is not None else "*"]
                exclude = set(rng.sample(items, 8))
                for k in (1, 10, 30):  # 30: past the kept list, read by a scan
                    brute = heapq.nlargest(
                        k, ((i, s) for i, s in row.items() if i not in exclude), key=lambda x: (x[1], x[0])
                    )
                    assert t.top(k, segment=seg, exclude=exclude) == [i for i, _ in brute]
                    best = heapq.nlargest(k, row.items(), key=lambda x: (x[1], x[0]))
                    assert t.ranked(k, segment=seg) == [(i, s / best[0][1]) for i, s in best]
    assert t._inflation.base == 1.0 and t._inflation.t0 and t._inflation.t0 > 0  # it did rescale
    restored = pickle.loads(pickle.dumps(t))
    assert restored.top(10) == t.top(10)
    state = dict(t.__dict__)
    del state["_tops"]  # a snapshot from before the kept ranking
    old = Trending.__new__(Trending)
    old.__setstate__(state)
    assert old.top(10) == t.top(10)


class _FixedNeighbours(BlendedSimilarity):
    """Neighbours with scores set by the test."""

    def __init__(self, lists: dict[str, list[tuple[str, float]]]) -> None:
        self.lists = lists

    def neighbours(self, item: str, k: int = 10, blend: Blend | None = None) -> list[tuple[str, float]]:
        return self.lists.get(item, [])[:k]


def test_recommendations_are_complete_when_the_series_cap_skips_most_of_the_best_candidates() -> None:
    """The best 4k candidates are all parts of one series: with one part allowed, the rest of
    the list comes from further down the full order."""
    series = [(f"s-p{n}", 1.0 - n / 1000) for n in range(60)]
    single = [(f"e{n}", 0.5 - n / 1000) for n in range(15)]
    catalog = {i: CatalogEntry(i, series_id="s", series_part=n) for n, (i, _) in enumerate(series)}
    sim = _FixedNeighbours({"h": series + single})
    cfg = RecConfig(k=10, neighbours=100, max_per_series=1)
    recs = recommend([("h", 1.0, 0.0)], 0.0, sim, Trending(), {"h"}, catalog, cfg)
    assert [r.item_id for r in recs] == ["s-p0"] + [f"e{n}" for n in range(9)]
    uncapped = recommend([("h", 1.0, 0.0)], 0.0, sim, Trending(), {"h"}, {}, cfg)
    assert [r.item_id for r in uncapped] == [f"s-p{n}" for n in range(10)]
