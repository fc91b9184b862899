"""Offline cost of the per-user models, one core, no Kafka: profile + lifecycle + segment, churn
and value scoring per event, the learner's cost per training sample, and memory per 100,000 users.

Reads a simulated world (``nba simulate --out``), keeps its valid events in memory, then times
:func:`models.user_step.on_event` over them (the worker's per-event model code), with trained
segmentation, churn and value snapshots scoring every event. Memory: the serialized profile
(what the table, its changelog and RocksDB hold) and the live Python objects (what the worker's
profile cache holds), measured with ``tracemalloc`` over the world's final profiles, scaled to
100,000 users; the pending churn/value snapshots inside them are also measured on their own.

    python -m bench.profile var/world/world.jsonl
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

from app.rules import setup
from app.settings import Settings
from lab.evaluate import EvalConfig, Evaluation
from lab.logs import read_ordered
from models import checkpoint
from models.churn import churn_features
from models.due import DueIndex
from models.facts import EventFacts
from models.features import profile_features
from models.profile import Profile
from models.user_step import on_event
from schemas.validate import Accepted, ValidationPolicy, parse_ingress_topic, validate

CHANNELS = frozenset(("app", "web", "wechat", "weibo", "douyin", "zhihu", "email", "sms"))


def main(path: Path, limit: int) -> dict[str, Any]:
    policy = ValidationPolicy(channels=CHANNELS)
    ev = Evaluation(EvalConfig(), policy, None, setup(Settings()))
    facts: list[tuple[str, EventFacts]] = []
    for rec in read_ordered(path, None):
        ev.feed(rec.topic, rec.key, rec.value)  # builds the catalog, the profiles and a trained model
        parsed = parse_ingress_topic("", rec.topic)
        if parsed is None or len(facts) >= limit:
            continue
        result = validate(
            orjson.dumps(rec.value), topic_channel=parsed[0], topic_type=parsed[1], policy=policy
        )
        if isinstance(result, Accepted):
            e = result.event
            facts.append((e.user_id or f"a:{e.anonymous_id}", EventFacts.from_event(e, result.spend)))
    assert ev.scorer is not None, "the world is too small to train the segmentation model"
    assert ev.churn_scorer is not None and ev.value_scorer is not None, "too small to train churn and value"
    models = ev._scorers()

    # per event: profile + lifecycle + segment scoring, fresh profiles, event-time order (keyed by
    # raw id: identity stitching is not part of this figure)
    profiles: dict[str, Profile] = {}
    due = DueIndex({}, 0)
    started = time.process_time()
    for uid, f in facts:
        p = profiles.get(uid)
        if p is None:
            p = profiles[uid] = Profile(uid)
        on_event(p, f, watermark=None, due=due, cfg=ev.step, catalog=ev.catalog, models=models)
    per_event_us = (time.process_time() - started) / len(facts) * 1e6

    # learner: cost per training sample
    model = ev.segmenter.clone_for_scoring()
    samples = [p for p in ev.profiles.values() if p.events >= 5 and p.last_seen is not None][:20_000]
    xs = [profile_features(p, p.last_seen or 0.0) for p in samples]
    started = time.process_time()
    for x in xs:
        model.learn_one(x)
    learn_us = (time.process_time() - started) / len(xs) * 1e6
    churn, value = checkpoint.copy(ev.churn), checkpoint.copy(ev.value)
    cx = [churn_features(p, p.last_seen or 0.0) for p in samples]
    started = time.process_time()
    for i, x in enumerate(cx):
        churn.predict_proba_one(x)  # the learner scores each label before learning it
        churn.learn_one(x, i % 7 == 0)
        value.learn_one(x, float(i % 5))
    churn_learn_us = (time.process_time() - started) / len(cx) * 1e6

    # memory per user over the final profiles (users only, not merged anonymous shells)
    final = [p for p in ev.profiles.values() if p.merged_into is None and p.last_seen is not None]
    blobs = [p.dumps() for p in final]
    live = _decoded_bytes(blobs, Profile.loads)
    active = [p for p in final if p.pending]
    pending_blobs = [orjson.dumps(p.pending) for p in active]
    pending_live = _decoded_bytes(pending_blobs, orjson.loads)
    n, na = len(final), max(1, len(active))
    return {
        "input": str(path),
        "events_timed": len(facts),
        "profile_lifecycle_segment_churn_value_us_per_event": round(per_event_us, 1),
        "events_per_s_one_core": round(1e6 / per_event_us),
        "learner_us_per_sample": round(learn_us, 1),
        "learner_churn_plus_value_us_per_label": round(churn_learn_us, 1),
        "users_with_pending_snapshots": len(active),
        "pending_snapshots_per_user_mean": round(sum(len(p.pending) for p in active) / na, 2),
        "pending_serialized_mb_per_100k_active_users": round(
            sum(map(len, pending_blobs)) / na * 1e5 / 1e6, 1
        ),
        "pending_python_mb_per_100k_active_users": round(pending_live / na * 1e5 / 1e6, 1),
        "users": n,
        "serialized_bytes_per_user_mean": round(sum(map(len, blobs)) / n),
        "serialized_bytes_per_user_max": max(map(len, blobs)),
        "serialized_mb_per_100k_users": round(sum(map(len, blobs)) / n * 100_000 / 1e6, 1),
        "python_objects_mb_per_100k_users": round(live / n * 100_000 / 1e6, 1),
    }


def _decoded_bytes(blobs: list[bytes], decode: Any) -> int:
    """Bytes of Python objects that decoding every blob allocates (``tracemalloc``)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    decoded = [decode(b) for b in blobs]
    live: int = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del decoded
    return live


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("path", type=Path)
    ap.add_argument("--limit", type=int, default=300_000, help="events timed")
    ap.add_argument("--out", type=Path, default=Path("bench/results/profile.json"))
    args = ap.parse_args()
    result = main(args.path, args.limit)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
