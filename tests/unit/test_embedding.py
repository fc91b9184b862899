"""River's item-to-item factorisation with negative sampling (models.embedding), and its place
in the blended similarity."""

from __future__ import annotations

import pickle
import random

import numpy as np
from river import reco

from models.catalog import CatalogEntry
from models.embedding import ItemEmbedding
from models.recommend import Recommender
from models.similarity import Blend, BlendedSimilarity, ContentSimilarity, CoOccurrence

NOISE = [f"n{i}" for i in range(40)]


def _stream(emb: ItemEmbedding, users: int, seed: int = 0) -> None:
    """Users view random items; whoever views "a" goes on to buy "b"."""
    rng = random.Random(seed)
    for _ in range(users):
        recent: list[str] = []
        for item in [*rng.sample(NOISE, 3), "a", "b", *rng.sample(NOISE, 2)]:
            emb.learn_one(item, recent)
            recent.append(item)


def test_an_item_that_follows_another_becomes_its_nearest_learned_neighbour() -> None:
    emb = ItemEmbedding(refresh_every=50, seed=3)
    _stream(emb, 400)
    assert emb.neighbours("a", 1)[0][0] == "b"
    assert emb.similarity("a", "b") > 0.8 and max(emb.similarity("a", n) for n in NOISE) < 0.6
    assert emb.neighbours("never-seen") == [] and emb.similarity("a", "never-seen") == 0.0


def test_same_seed_same_vectors_and_it_pickles() -> None:
    one, two = ItemEmbedding(seed=7), ItemEmbedding(seed=7)
    _stream(one, 50)
    _stream(two, 50)
    assert all(np.array_equal(one.mf.i_latents[i], two.mf.i_latents[i]) for i in one.mf.i_latents)
    copy = pickle.loads(pickle.dumps(one))
    _stream(one, 5, seed=1)
    _stream(copy, 5, seed=1)
    assert one.similarity("a", "b") == copy.similarity("a", "b")


def test_the_cost_of_one_interaction_is_bounded_and_it_keeps_no_user_factors() -> None:
    emb = ItemEmbedding(context=4, negatives=2, seed=1)
    calls: list[tuple[str, str, bool]] = []
    learn = reco.FunkMF.learn_one

    def counting(self: reco.FunkMF, user: str, item: str, y: bool, x: object = None) -> None:
        calls.append((user, item, y))
        learn(self, user, item, y)

    emb.mf.learn_one = counting.__get__(emb.mf)  # type: ignore[method-assign]
    _stream(emb, 20)
    before = len(calls)
    emb.learn_one("z", [f"n{i}" for i in range(30)])  # a long history: only the last 4 count
    assert len(calls) - before <= 4 * (1 + 2)
    assert {u for u, _, _ in calls[before:]} == {"n26", "n27", "n28", "n29"}
    assert [y for _, i, y in calls[before:] if i == "z"] == [True] * 4
    # both sides of the factorisation are items: nothing keyed by a user to erase
    assert set(emb.mf.u_latents) <= set(NOISE) | {"a", "b", "n26", "n27", "n28", "n29"}


def test_the_blend_adds_the_learned_neighbours_with_their_weight() -> None:
    emb = ItemEmbedding(refresh_every=50, seed=3)
    _stream(emb, 400)
    sim = BlendedSimilarity(CoOccurrence(), ContentSimilarity({"a": CatalogEntry("a")}), embedding=emb)
    assert sim.neighbours("a", 3, Blend(cooc=1.0, embedding=0.0)) == []  # no co-occurrence, no content
    learned = sim.neighbours("a", 3, Blend(cooc=1.0, embedding=0.5))
    assert learned[0][0] == "b" and abs(learned[0][1] - 0.5 * emb.similarity("a", "b")) < 1e-9


def test_the_recommender_trains_its_factorisation_and_old_snapshots_are_refused_not_misread() -> None:
    from app.model_store import ModelStore
    from models import checkpoint

    r = Recommender(embedding=ItemEmbedding(refresh_every=10, seed=2))
    for u in range(200):
        r.learn_one({"item": "b", "kind": "purchase", "ts": u * 60.0, "recent": [["a", 1.0]]})
        r.learn_one({"item": f"n{u % 40}", "kind": "view", "ts": u * 60.0 + 1, "recent": [["b", 5.0]]})
    assert r.similarity.neighbours("a", 1, Blend(cooc=0.0, embedding=1.0))[0][0] == "b"
    store = ModelStore("nba.models", {})
    blob = checkpoint.encode(r, {"model": "similarity", "offset": 3})
    old = blob.replace(b'"format":2', b'"format":1', 1)  # as written before the factorisation
    store.apply(b"similarity", old, 0)
    assert "similarity" not in store.models  # skipped: the learner retrains and publishes anew
    store.apply(b"similarity", blob, 1)
    assert store.models["similarity"].similar("a", 1)[0][0] == "b"
    blend = Blend.__new__(Blend)
    blend.__setstate__([1.0, 0.2])  # a config dataclass pickled before a field was added
    assert pickle.loads(pickle.dumps(blend)) == Blend(cooc=1.0, content=0.2, embedding=0.0)
