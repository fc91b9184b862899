"""``nba evaluate``: offline, prequential scoring of the models on a log, without Kafka.

Drives the worker's engine (:mod:`models.engine`: identity, forwarding, parking and merging,
due times, erase and the step) over the stream in event-time order, on one partition of an
in-memory store, predicting before learning; it only counts and learns from the effects. Where
a simulator truth file sits beside the input (``<input>.truth.json``) it adds the figures that
need truth; without it they are ``null`` and listed under ``absent``.

Figures (JSON keys; the README lists them all):

* ``data.*``: records, valid events, users, duplicates and late events dropped, rejected rows,
  users erased (``users.erase`` records, applied as the worker does) and their later events dropped.
* ``evaluate.events_per_s``: events/s of the whole offline path (reading, sorting, validation,
  identity, profiles, due times, baselines); ``evaluate.profile_updates_per_s``: of the engine
  alone (identity, the profile update and the worker's per-event model code).
* ``churn.*`` and ``value.*``: the worker's churn and value code (:mod:`models.user_step`,
  :mod:`models.churn`) scores every applied event and, at each daily event-time tick, every
  user active in the last 30 days; sampled snapshots are labelled as the watermark moves (no
  look-ahead), and the models learn each label after it was scored, as the learner does. The
  figures against batch references are computed in :mod:`lab.churn_eval` (see there).
* ``similarity.*``: hit rate at 10 for the next purchase of the online recommender, the
  popularity baseline and a daily-refitted item-kNN, each scored before the purchase is learned
  and tuned on the first 30 days (see :mod:`lab.similarity_eval`).
"""

from __future__ import annotations

import itertools
import math
import random
import time
import zlib
from collections import Counter
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from aiokafka.partitioner import murmur2
from pydantic import BaseModel, ValidationError
from tqdm import tqdm

from lab.churn_eval import ChurnRecorder
from lab.logs import Mapping, ReadStats, Rejections, read_ordered
from lab.similarity_eval import SimilarityRecorder
from models import checkpoint
from models import features as feats
from models.catalog import CatalogEntry
from models.churn import ChurnModel, Labelled, ValueModel
from models.engine import (
    ConsentMsg,
    Count,
    Effect,
    Engine,
    EraseMsg,
    EventApplied,
    FeedbackMsg,
    Hop,
    LogDecision,
    MemoryStore,
    PublishAction,
    PublishCancel,
    PublishLifecycle,
    Refused,
    Train,
    UserMsg,
)
from models.facts import EventFacts
from models.identity import routing_id
from models.profile import Profile
from models.recommend import recent_interactions
from models.segmentation import Segmenter
from models.setup import Setup
from models.user_step import Scorers
from schemas.catalog import CatalogItem
from schemas.feedback import Feedback
from schemas.users import ConsentEvent, EraseRequest
from schemas.validate import Accepted, ValidationPolicy, parse_ingress_topic, validate
from schemas.vocabulary import CHANNELS, DAY


@dataclass(frozen=True, slots=True)
class EvalConfig:
    horizon_s: float = 14 * DAY
    active_window_s: float = 30 * DAY
    top_k: int = 10
    max_rows_in_memory: int = 200_000
    min_events_for_ari: int = 5
    partitions: int = 1
    """Partitions of the worker's topics: each record is handled on the partition the worker's
    producer would send it to (Kafka's murmur2 of its key), with that partition's own event-time
    clock, and hops go to their user's partition."""
    decisions: bool = False
    """Decide and publish as the worker does (``published`` keeps the actions, cancellations,
    decision records and stage changes); off, the profiles are updated without any decision."""
    frozen: Scorers | None = None
    """Score with these models throughout and learn nothing (off: learn as the learner does)."""


def partition_for(key: bytes | None, partitions: int) -> int:
    """The partition the worker's producers send ``key`` to (Kafka's default partitioner)."""
    if key is None or partitions <= 1:
        return 0
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


class Evaluation:
    """The state of one prequential run (fed record by record, in event-time order)."""

    def __init__(
        self,
        cfg: EvalConfig,
        policy: ValidationPolicy,
        truth: dict[str, Any] | None,
        setup: Setup,
    ) -> None:
        self.cfg = cfg
        self.snapshot_every = setup.snapshot_every
        self.policy = policy
        self.truth_churn: dict[str, float | None] | None = None
        self.truth_persona: dict[str, str] = {}
        if truth is not None:
            self.truth_persona = {uid: u["persona"] for uid, u in truth["users"].items()}
            self.truth_churn = {
                uid: (
                    datetime.fromisoformat(u["churn_at"].replace("Z", "+00:00")).timestamp()
                    if u.get("churn_at")
                    else None
                )
                for uid, u in truth["users"].items()
            }
        self.step = setup.step if cfg.decisions else replace(setup.step, send_enabled=False)
        self.store = MemoryStore(encode=False)
        self.profiles: dict[str, Profile] = self.store.live
        """The live profiles (the store's own dictionary)."""
        self.counts: Counter[str] = Counter()
        self.rejections = Rejections()
        """Records the validators refused (the reader's own rejections are in its ReadStats)."""
        self.churn = setup.new_churn()
        self.value = setup.new_value()
        self.churn_scorer: ChurnModel | None = None
        self.value_scorer: ValueModel | None = None
        self.labels_learned = 0
        self.recorder = ChurnRecorder(self.step.labels.horizon_s)
        self.next_tick: float | None = None
        self.daily_events: Counter[int] = Counter()
        self.profile_seconds = 0.0
        self.catalog: dict[str, CatalogEntry] = {}
        self.similarity = SimilarityRecorder(self.catalog, cfg.top_k)
        self.engine = Engine(
            setup.engine_config(self.step, publish=cfg.decisions),
            self.catalog,
            observe=self._score_purchase,
        )
        self.segmenter = setup.new_segmenter()
        self.scorer: Segmenter | None = None
        self.samples = 0
        self.transitions: Counter[str] = Counter()
        self.daily_segments: dict[str, int] = {}
        self.segment_changes: list[tuple[int, int, int]] = []
        """(day, users scored, users whose segment changed since the previous day)."""
        self.centroid_history: list[tuple[int, dict[int, dict[str, float]]]] = []
        self.last_ts: float | None = None
        self.user_stream: Counter[str] = Counter()
        """The messages the worker would carry on ``nba.user-stream`` (hops and routed records), by kind."""
        self.published: list[Effect] = []
        """With ``cfg.decisions``: what the worker would have sent, in order."""

    # -- the stream: the worker's engine over an in-memory store ----------------------------
    def feed(self, topic: str, key: str | None, value: dict[str, Any]) -> None:
        parsed = parse_ingress_topic("", topic)
        if parsed is None:
            if topic == "catalog.items":
                self._catalog(value)
            elif topic == "users.erase":
                self._routed(value, EraseRequest, EraseMsg.of, "erase")
            elif topic == "users.consent":
                self._routed(value, ConsentEvent, ConsentMsg.of, "consent")
            elif topic == "marketing.feedback":
                self._routed(value, Feedback, FeedbackMsg.of, "feedback")
            else:
                self.counts[f"other:{topic}"] += 1
            return
        result = validate(
            orjson.dumps(value),
            topic_channel=parsed[0],
            topic_type=parsed[1],
            policy=self.policy,
            key=key.encode() if key else None,
            check_key=True,
        )
        if not isinstance(result, Accepted):
            self.rejections.add(result.reason.value, f"{topic}: {result.detail}")
            return
        event = result.event
        facts = EventFacts.from_event(event, result.spend)
        self._tick_until(facts.ts)
        self.last_ts = facts.ts if self.last_ts is None else max(self.last_ts, facts.ts)
        started = time.perf_counter()
        self.engine.models = self._scorers()
        raw_key = key.encode() if key else None
        effects = self.engine.ingest(
            self.store,
            partition_for(raw_key, self.cfg.partitions),
            raw_key,
            facts,
            event.user_id,
            event.anonymous_id,
            0,
        )
        effects = self.engine.drain(self.store, effects, self._partition_of)
        self.profile_seconds += time.perf_counter() - started
        self._take(effects)

    def _partition_of(self, routing: str) -> int:
        return partition_for(routing.encode(), self.cfg.partitions)

    def _take(self, effects: list[Effect]) -> None:
        """Count and learn from what the engine did (the recorders and the learner's part)."""
        for e in effects:
            if isinstance(e, Count):
                name = _COUNTED.get(e.name)
                if name is not None:
                    self.counts[name] += e.n
                elif e.name == "lifecycle_transitions":
                    self.transitions["->".join(e.labels)] += e.n
            elif isinstance(e, EventApplied):
                self.daily_events[int(e.facts.ts // DAY)] += 1
                self.recorder.activity_at(e.canonical, e.facts.ts)
                if e.result.interaction is not None:
                    self.similarity.interaction(e.canonical, e.result.interaction)
            elif isinstance(e, Train):
                if self.cfg.frozen is not None:
                    continue
                if e.model == "segmentation":
                    self._learn(dict(e.x))
                elif e.labelled is not None:
                    self._labelled((e.labelled,))
            elif isinstance(e, Hop):
                self.user_stream[e.msg.kind] += 1
            elif isinstance(e, Refused):  # the worker dead-letters these
                self.rejections.add(e.reason.value, e.detail)
            elif isinstance(e, PublishAction | PublishCancel | LogDecision | PublishLifecycle):
                self.published.append(e)

    def _routed(self, value: dict[str, Any], contract: type[BaseModel], to_msg: Any, what: str) -> None:
        """A consent change, a sender's feedback or an erase request, applied by the engine on
        its user's partition as the worker routes it (an erase: the user's profile, the anonymous
        profiles merged into it and their identity links go, and their later events are dropped)."""
        try:
            msg: UserMsg = to_msg(contract.model_validate(value))
        except ValidationError as exc:
            self.rejections.add(what, f"{what}: {exc.errors()[0]['msg'] if exc.errors() else exc}")
            return
        if what == "erase":
            self.counts["erased_users"] += 1
        self.user_stream[msg.kind] += 1  # the worker's routed agents hop it to the user's partition
        partition = self._partition_of(routing_id(msg.canonical))
        self.engine.models = self._scorers()
        self._take(
            self.engine.drain(
                self.store, self.engine.handle(self.store, partition, [msg]), self._partition_of
            )
        )

    def _catalog(self, value: dict[str, Any]) -> None:
        try:
            item = CatalogItem.model_validate(value)
        except ValueError as exc:
            self.rejections.add("catalog", f"catalog.items: {exc}")
            return
        self.catalog[item.item_id] = CatalogEntry.from_item(item)

    # -- segmentation: one learner, scoring from its latest snapshot ----------------------
    def _learn(self, sample: dict[str, float]) -> None:
        self.segmenter.learn_one(sample)
        self.samples += 1
        if self.segmenter.ready and (self.scorer is None or self.samples % self.snapshot_every == 0):
            self.segmenter.stabilize()
            self.scorer = self.segmenter.clone_for_scoring()

    def _segment_day(self, t: float) -> None:
        """Daily: how many active users (a fixed tenth, by hash) changed segment since yesterday,
        and the centroids."""
        if self.scorer is None:
            return
        day = int(t // DAY)
        scored = changed = 0
        for canonical, p in self.profiles.items():
            if zlib.crc32(canonical.encode()) % 10:
                continue  # a fixed tenth of the users (by hash) is enough for a rate, at a tenth the cost
            if (
                p.merged_into is None
                and p.last_seen is not None
                and t - p.last_seen <= self.cfg.active_window_s
            ):
                seg = self.scorer.predict_one(feats.profile_features(p, t))
                prev = self.daily_segments.get(canonical)
                scored += 1
                changed += prev is not None and prev != seg
                self.daily_segments[canonical] = seg
        self.segment_changes.append((day, scored, changed))
        self.centroid_history.append((day, self.scorer.scaled_centroids()))

    # -- daily: segment changes (churn ticks are the worker's own due times) ----------------
    def _tick_until(self, ts: float) -> None:
        if self.next_tick is None:
            self.next_tick = (ts // DAY + 1) * DAY
        while ts >= self.next_tick:
            self._segment_day(self.next_tick)
            self.next_tick += DAY

    # -- churn and value: learned as the learner does, from the labels the worker code emits --
    def _scorers(self) -> Scorers:
        if self.cfg.frozen is not None:
            return self.cfg.frozen
        return Scorers(self.scorer, self.churn_scorer, self.value_scorer)

    def _labelled(self, items: tuple[Labelled, ...]) -> None:
        for item in items:
            self.recorder.add(item)
            if item.model == "churn":
                self.churn.learn_one(item.x, bool(item.y))
            else:
                self.value.learn_one(item.x, item.y)
            self.labels_learned += 1
            if self.labels_learned % self.snapshot_every == 0:  # the learner's snapshot cadence
                self.churn_scorer = checkpoint.copy(self.churn) if self.churn.n_learned else None
                self.value_scorer = checkpoint.copy(self.value) if self.value.n_learned else None

    # -- next purchase: scored by every recommender before it is learned -------------------
    def _score_purchase(self, profile: Profile, facts: EventFacts) -> None:
        """Called by the engine just before it applies an event (see :class:`models.engine.Engine`)."""
        if (
            facts.type != "purchase"
            or facts.item_id is None
            or facts.item_id in profile.bought
            or facts.dedupe_key in profile.seen
        ):
            return  # a re-purchase or a redelivered purchase is no new target
        history = recent_interactions(profile.item_views, profile.bought, self.step.history)
        self.similarity.purchase(
            profile.canonical,
            facts.item_id,
            facts.ts,
            profile.excluded,
            history,
            profile.segment,
            facts.channel,
        )

    # -- the report ------------------------------------------------------------------------
    def report(self, seconds: float, stats: ReadStats) -> dict[str, Any]:
        events = self.counts["applied"] + self.counts["duplicate"] + self.counts["late"]
        rejected = Rejections()
        rejected.merge(stats.rejected)
        rejected.merge(self.rejections)
        out: dict[str, Any] = {
            "data.records": stats.records,
            "data.events": self.counts["applied"],
            # users with at least one applied event (a consent change alone keeps a profile too)
            "data.users": sum(
                1 for p in self.profiles.values() if p.merged_into is None and p.last_seen is not None
            ),
            "data.duplicates": self.counts["duplicate"],
            "data.late": self.counts["late"],
            "data.erased_users": self.counts["erased_users"],
            "data.erased_events": self.counts["erased"],
            "data.rejected": rejected.total(),
            "data.rejected_by_reason": dict(rejected.most_common()),
            "data.rejected_examples": rejected.examples,
            "data.time_offset_s": stats.time_offset_s,
            "evaluate.events_per_s": round(events / seconds) if seconds else None,
            "evaluate.profile_updates_per_s": round(events / self.profile_seconds)
            if self.profile_seconds
            else None,
        }
        out.update(self.similarity.report())
        final = {c: p.merged_into for c, p in self.profiles.items() if p.merged_into is not None}
        out.update(self.recorder.report(final, self.truth_churn))
        out.update(self._segmentation_report())
        out.update(self._lifecycle_report())
        out["absent"] = {}
        if self.truth_churn is None:
            out["absent"]["churn.true_auc"] = out["absent"]["churn.true_rule_auc"] = (
                "no simulator truth beside the input"
            )
        out["series"] = {
            "day": sorted(self.daily_events),
            "events": [self.daily_events[d] for d in sorted(self.daily_events)],
        }
        return out

    def _segmentation_report(self) -> dict[str, Any]:
        from sklearn.cluster import KMeans
        from sklearn.metrics import adjusted_rand_score
        from sklearn.preprocessing import StandardScaler

        out: dict[str, Any] = {
            "segmentation.n_segments": self.segmenter.n_segments,
            "segmentation.samples": self.samples,
            "segmentation.ari": None,
            "segmentation.offline_kmeans_ari": None,
            "segmentation.ari_ratio": None,
        }
        recent = self.segment_changes[-30:]
        if recent:
            out["segmentation.daily_change_rate"] = round(
                sum(c for *_, c in recent) / max(1, sum(n for _, n, _ in recent)), 4
            )
        drifts = []
        for (_, a), (_, b) in itertools.pairwise(self.centroid_history[-31:]):
            drifts += [
                math.dist([a[i][k] for k in feats.FEATURES], [b[i][k] for k in feats.FEATURES])
                for i in a
                if i in b
            ]
        if drifts:
            out["segmentation.centroid_drift_per_day"] = round(sum(drifts) / len(drifts), 4)
        if self.scorer is not None:
            out["segmentation.descriptions"] = {str(k): v for k, v in self.scorer.describe().items()}
        if not self.truth_persona or self.scorer is None or self.last_ts is None:
            return out
        users = [
            (c, p)
            for c, p in sorted(self.profiles.items())
            if c.startswith("u:")
            and p.merged_into is None
            and p.events >= self.cfg.min_events_for_ari
            and c[2:] in self.truth_persona
        ]
        k = self.segmenter.n_segments
        if len(users) < k:
            return out
        xs = [feats.profile_features(p, self.last_ts) for _, p in users]
        out["segmentation.k_by_silhouette"] = choose_k([[x[f] for f in feats.FEATURES] for x in xs])
        personas = [self.truth_persona[c[2:]] for c, _ in users]
        online = [self.scorer.predict_one(x) for x in xs]
        matrix = StandardScaler().fit_transform([[x[k] for k in feats.FEATURES] for x in xs])
        offline = KMeans(n_clusters=k, n_init=10, random_state=self.segmenter.seed).fit_predict(matrix)
        ari, offline_ari = adjusted_rand_score(personas, online), adjusted_rand_score(personas, offline)
        out["segmentation.users_scored"] = len(users)
        out["segmentation.ari"] = _r(float(ari))
        out["segmentation.offline_kmeans_ari"] = _r(float(offline_ari))
        out["segmentation.ari_ratio"] = _r(float(ari / offline_ari)) if offline_ari > 0 else None
        return out

    def _lifecycle_report(self) -> dict[str, Any]:
        users = {c: p for c, p in self.profiles.items() if p.merged_into is None and p.last_seen is not None}
        out: dict[str, Any] = {
            "lifecycle.stages": dict(sorted(Counter(p.stage for p in users.values()).items())),
            "lifecycle.transitions": sum(self.transitions.values()),
        }
        if self.truth_churn is None or self.last_ts is None:
            return out
        end = self.last_ts
        churned = [
            p
            for c, p in users.items()
            if c.startswith("u:")
            and self.truth_churn.get(c[2:]) is not None
            and p.last_seen is not None
            and p.last_seen <= end - self.cfg.horizon_s
        ]
        active = [
            p
            for c, p in users.items()
            if c.startswith("u:") and c[2:] in self.truth_churn and self.truth_churn[c[2:]] is None
        ]
        if churned:
            out["lifecycle.dormant_recall_churned"] = _r(
                sum(p.stage == "dormant" for p in churned) / len(churned)
            )
        if active:
            out["lifecycle.dormant_rate_active"] = _r(sum(p.stage == "dormant" for p in active) / len(active))
        out["lifecycle.churned_users"] = len(churned)
        out["lifecycle.active_users"] = len(active)
        return out


def choose_k(
    rows: list[list[float]], ks: range = range(2, 11), sample: int = 3_000, seed: int = 0
) -> dict[str, Any]:
    """The number of segments a data-driven criterion picks, without any truth: the mean
    silhouette of offline k-means (standardised features, a seeded sample of users) for each k."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from sklearn.preprocessing import StandardScaler

    rng = random.Random(seed)
    picked = rows if len(rows) <= sample else rng.sample(rows, sample)
    matrix = StandardScaler().fit_transform(picked)
    scores = {}
    for k in ks:
        if k >= len(picked):
            break
        labels = KMeans(n_clusters=k, n_init=5, random_state=seed).fit_predict(matrix)
        scores[k] = round(float(silhouette_score(matrix, labels)), 4)
    best = max(scores, key=lambda k: scores[k]) if scores else None
    return {"best": best, "silhouette": {str(k): v for k, v in scores.items()}}


_COUNTED = {
    "events_applied": "applied",
    "events_duplicate": "duplicate",
    "events_late": "late",
    "erased_events_dropped": "erased",
}
"""Engine counts the report reads, and their names in it."""


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 4)


def evaluate(
    path: Path,
    setup: Setup,
    *,
    mapping: Mapping | None = None,
    truth_path: Path | None = None,
    cfg: EvalConfig | None = None,
    policy: ValidationPolicy | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Feed every record of ``path`` to an :class:`Evaluation`, in event-time order, and report;
    with ``progress``, a progress line on stderr (records read, records per second)."""
    cfg = cfg or EvalConfig()
    policy = policy or ValidationPolicy(channels=frozenset(CHANNELS))
    truth_path = truth_path or path.with_name(path.name + ".truth.json")
    truth = orjson.loads(truth_path.read_bytes()) if truth_path.exists() else None
    ev = Evaluation(cfg, policy, truth, setup)
    stats = ReadStats()
    started = time.perf_counter()
    records = read_ordered(path, mapping, max_rows_in_memory=cfg.max_rows_in_memory, stats=stats)
    with tqdm(unit="rec", desc="evaluate", disable=not progress, mininterval=1.0, dynamic_ncols=True) as bar:
        for rec in records:
            ev.feed(rec.topic, rec.key, rec.value)
            bar.update(1)
    report = ev.report(time.perf_counter() - started, stats)
    report["input"] = str(path)
    report["truth"] = str(truth_path) if truth is not None else None
    report["generated_at"] = datetime.now(UTC).isoformat()
    return report


def render_table(report: dict[str, Any]) -> str:
    rows = [(k, v) for k, v in report.items() if k not in ("series", "absent")]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k.ljust(width)}  {'—' if v is None else v}" for k, v in rows]
    lines += [f"  ({k}: {why})" for k, why in report.get("absent", {}).items()]
    return "\n".join(lines)


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML report: the figures and events per simulated day (inline SVG)."""
    days, values = report["series"]["day"], report["series"]["events"]
    w, h, pad = 720, 220, 30
    top = max(values) if values else 1
    points = " ".join(
        f"{pad + (w - 2 * pad) * i / max(1, len(values) - 1):.1f},{h - pad - (h - 2 * pad) * v / top:.1f}"
        for i, v in enumerate(values)
    )
    svg = (
        f'<svg width="{w}" height="{h}" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{points}"/>'
        f'<text x="{pad}" y="15">events per day (max {top}), {len(days)} days</text></svg>'
    )
    rows = "".join(
        f"<tr><td>{k}</td><td>{'—' if v is None else v}</td></tr>"
        for k, v in report.items()
        if k not in ("series", "absent", "churn.reliability")
    )
    return (
        f"<!doctype html><meta charset=utf-8><title>nba evaluate</title>"
        f"<h1>nba evaluate</h1><table>{rows}</table><h2>Over simulated time</h2>{svg}"
        f"<h2>Churn risk: reliability (last 30 labelled days)</h2>"
        f"{_reliability_svg(report.get('churn.reliability') or [])}"
    )


def _reliability_svg(bins: list[tuple[float, float, int]], size: int = 320, pad: int = 30) -> str:
    """Predicted (x) against observed (y) churn rate per equal-mass bin, and the diagonal."""
    span = size - 2 * pad

    def xy(p: float, o: float) -> str:
        return f"{pad + span * p:.1f},{size - pad - span * o:.1f}"

    dots = "".join(
        f'<circle cx="{xy(p, o).split(",")[0]}" cy="{xy(p, o).split(",")[1]}" r="4" fill="#d62728">'
        f"<title>predicted {p:.3f}, observed {o:.3f}, {n} snapshots</title></circle>"
        for p, o, n in bins
    )
    return (
        f'<svg width="{size}" height="{size}" xmlns="http://www.w3.org/2000/svg">'
        f'<polyline fill="none" stroke="#999" points="{xy(0, 0)} {xy(1, 1)}"/>{dots}'
        f'<text x="{pad}" y="15">observed vs predicted, {len(bins)} equal-mass bins</text>'
        f'<text x="{pad}" y="{size - 8}">predicted risk 0 to 1</text></svg>'
    )
