"""Cost of item similarity and recommendations, one core, no Kafka or Redis.

* update: the learner's :meth:`models.recommend.Recommender.learn_one` per interaction sample
  with a fan-out of N = 20 recent items (the samples the worker's step emits), and the part of
  it spent in River's factorisation (:class:`models.embedding.ItemEmbedding`);
* recommend: :meth:`Recommender.recommend` latency, p50 and p99, for users with 0 to 20 recent
  items (what ``GET /users/{id}/recommendations`` computes after reading the profile), with the
  factorisation's blend weight at 0 and at 0.05 (reading its neighbours);
* memory: the model's live Python objects (``tracemalloc``) and its snapshot size, per 10,000
  items, after a synthetic stream over ``--items`` items (Zipf popularity, users buying within
  a few categories).

Redis round trips per event are zero by design: workers serve from the in-memory snapshot and
the learner rewrites changed neighbour lists in one pipeline per snapshot.

    python -m bench.similarity --items 10000 --events 200000
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import time
import tracemalloc
import zlib
from typing import Any

import orjson

from models import checkpoint
from models.embedding import ItemEmbedding
from models.recommend import RecConfig, Recommender
from models.similarity import Blend, CoOccurrence, InteractionWeights


def _stream(items: int, events: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    weights = [1 / (i + 1) ** 0.8 for i in range(items)]
    per_cat = max(1, items // 50)
    samples, recent = [], {}
    kinds = ["view"] * 6 + ["click"] * 2 + ["share", "purchase"]
    for _ in range(events):
        user = f"u{int(rng.paretovariate(1.2)) % 50_000}"
        cat = zlib.crc32(user.encode()) % 50
        if rng.random() < 0.7:
            item = f"i{cat * per_cat + rng.randrange(per_cat)}"
        else:
            item = f"i{rng.choices(range(items), weights)[0]}"
        mine = recent.setdefault(user, {})
        kind = rng.choice(kinds)
        samples.append(
            {
                "item": item,
                "kind": kind,
                "ts": len(samples) * 10.0,
                "recent": [[i, w] for i, w in mine.items()],
            }
        )
        mine.pop(item, None)
        mine[item] = InteractionWeights().of(kind)
        while len(mine) > 20:
            mine.pop(next(iter(mine)))
    return samples


def run(items: int, events: int, seed: int) -> dict[str, Any]:
    samples = _stream(items, events, seed)
    model = Recommender(CoOccurrence(fan_out=20), config=RecConfig())
    started = time.perf_counter()
    for x in samples:
        model.learn_one(x)
    update_s = time.perf_counter() - started
    embedding = ItemEmbedding()
    started = time.perf_counter()
    for x in samples:
        embedding.learn_one(x["item"], [i for i, _ in x["recent"]])
    embedding_s = time.perf_counter() - started
    gc.collect()
    tracemalloc.start()  # memory: the same stream again, traced (tracing slows it: not timed)
    before = tracemalloc.get_traced_memory()[0]
    traced = Recommender(CoOccurrence(fan_out=20), config=RecConfig())
    for x in samples:
        traced.learn_one(x)
    live = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del traced
    pristine = checkpoint.encode(model, {"model": "similarity"})  # what nba.models carries
    snapshot = len(pristine)
    seen = len(model._cooc.counts)
    out: dict[str, Any] = {
        "items_seen": seen,
        "events": events,
        "update_us_per_event": round(1e6 * update_s / events, 1),
        "of_which_factorisation_us": round(1e6 * embedding_s / events, 1),
    }
    for name, blend in (("recommend", Blend()), ("recommend_with_factorisation", Blend(embedding=0.05))):
        rng = random.Random(seed + 1)
        served = checkpoint.decode(pristine)[1].attach({})  # cold caches for each blend, as served
        latencies = []
        for n in range(2_000):
            x = samples[rng.randrange(len(samples))]
            history = [(i, w, x["ts"]) for i, w in x["recent"]][-rng.randrange(0, 21) :] if n % 10 else []
            t = time.perf_counter()
            served.recommend(history, x["ts"] + 1, exclude={i for i, _, _ in history}, blend=blend)
            latencies.append(time.perf_counter() - t)
        latencies.sort()
        out[f"{name}_ms_p50"] = round(1e3 * latencies[len(latencies) // 2], 3)
        out[f"{name}_ms_p99"] = round(1e3 * latencies[int(len(latencies) * 0.99)], 3)
        out[f"{name}_ms_mean"] = round(1e3 * statistics.fmean(latencies), 3)
    return {
        **out,
        "memory_mb_per_10k_items": round(live / 2**20 * 10_000 / max(1, seen), 1),
        "snapshot_mb_per_10k_items": round(snapshot / 2**20 * 10_000 / max(1, seen), 1),
        "redis_round_trips_per_event": 0,
    }


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    print(orjson.dumps(run(args.items, args.events, args.seed), option=orjson.OPT_INDENT_2).decode())
