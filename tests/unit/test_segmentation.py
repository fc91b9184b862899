"""The segmentation model: River's conventions, recovery of known groups, stable ids, readable
descriptions, and snapshots that score like the original."""

from __future__ import annotations

import pickle
import random

from river import checks
from sklearn.metrics import adjusted_rand_score

from models import checkpoint
from models.segmentation import Segmenter

CENTERS = {  # three well-separated personas in feature space
    "sharer": {"share_rate": 0.4, "spend": 1.0, "ch_wechat": 0.8, "completion": 0.5},
    "spender": {"share_rate": 0.02, "spend": 6.0, "ch_wechat": 0.1, "completion": 0.9},
    "browser": {"share_rate": 0.02, "spend": 0.5, "ch_wechat": 0.1, "completion": 0.2},
}


def sample(rng: random.Random, persona: str) -> dict[str, float]:
    return {k: v + rng.gauss(0, 0.05 * (1 + v)) for k, v in CENTERS[persona].items()}


def trained(seed: int = 0, n: int = 3000) -> tuple[Segmenter, random.Random]:
    rng = random.Random(seed)
    seg = Segmenter(n_segments=3, warmup=200, seed=seed)
    for _ in range(n):
        seg.learn_one(sample(rng, rng.choice(list(CENTERS))))
    return seg, rng


def test_follows_rivers_conventions() -> None:
    for check in checks.yield_checks(Segmenter(n_segments=3, warmup=10)):
        check(Segmenter(n_segments=3, warmup=10).clone())


def test_recovers_well_separated_groups() -> None:
    for seed in range(3):
        seg, rng = trained(seed)
        truth = [rng.choice(list(CENTERS)) for _ in range(600)]
        predicted = [seg.predict_one(sample(rng, p)) for p in truth]
        assert adjusted_rand_score(truth, predicted) > 0.95


def test_segment_ids_survive_a_label_permutation_inside_the_clusterer() -> None:
    seg, rng = trained()
    probes = [sample(rng, p) for p in CENTERS for _ in range(20)]
    before = [seg.predict_one(x) for x in probes]
    assert seg.kmeans is not None
    centers = dict(seg.kmeans.centers)  # rotate the inner labels, as a re-seeded model would
    seg.kmeans.centers = {(lab + 1) % 3: c for lab, c in centers.items()}
    seg.counts = {(lab + 1) % 3: n for lab, n in seg.counts.items()}
    seg._fast = None
    assert [seg.predict_one(x) for x in probes] != before  # without re-matching, ids flip
    seg.stabilize()
    assert [seg.predict_one(x) for x in probes] == before


def test_learning_more_keeps_ids_stable() -> None:
    seg, rng = trained(n=1000)
    probes = [sample(rng, p) for p in CENTERS for _ in range(20)]
    before = [seg.predict_one(x) for x in probes]
    for _ in range(2000):
        seg.learn_one(sample(rng, rng.choice(list(CENTERS))))
    seg.stabilize()
    assert [seg.predict_one(x) for x in probes] == before


def test_descriptions_name_what_stands_out() -> None:
    seg, rng = trained()
    words = seg.describe()
    spender = words[seg.predict_one(sample(rng, "spender"))]
    sharer = words[seg.predict_one(sample(rng, "sharer"))]
    assert "high spend" in spender
    assert "shares often" in sharer and "prefers wechat" in sharer


def test_a_snapshot_scores_like_the_model_and_restores_its_state() -> None:
    seg, rng = trained()
    header, restored = checkpoint.decode(checkpoint.encode(seg, {"offset": 41}))
    probes = [sample(rng, p) for p in CENTERS for _ in range(30)]
    assert header["offset"] == 41
    assert [restored.predict_one(x) for x in probes] == [seg.predict_one(x) for x in probes]
    assert restored.n_learned == seg.n_learned and pickle.loads(pickle.dumps(restored)).counts == seg.counts


def test_before_warmup_everyone_is_segment_zero_and_the_model_is_not_ready() -> None:
    seg = Segmenter(n_segments=3, warmup=50)
    for i in range(49):
        seg.learn_one({"spend": float(i)})
    assert not seg.ready and seg.predict_one({"spend": 3.0}) == 0
    seg.learn_one({"spend": 1.0})
    assert seg.ready
