"""``learner``: the one instance that trains the shared models, and publishes their snapshots.

The pattern every shared model follows (segmentation, churn and value):

* every worker sends training samples to ``nba.training``, which has **one partition**, so the
  consumer group gives it to exactly one worker: that worker's ``learner`` is the only learner;
* the learner learns each sample once, and every ``snapshot_every`` samples (or
  ``snapshot_interval_s`` wall seconds with samples not yet in a snapshot) publishes a snapshot to
  the compacted ``nba.models`` topic; the snapshot's header records the training offset it
  reflects;
* every worker follows ``nba.models`` (:mod:`app.model_store`) and scores with the latest
  snapshot, so all workers assign the same segments;
* samples are acknowledged like any other message (so rebalances and shutdowns never wait on
  the learner). The snapshot, not the consumer offset, is the truth: when the learner starts, or
  receives an offset past the one it expects (a crash, or the partition moved), it restores the
  newest snapshot and reads the samples between the snapshot's offset and the one it received
  straight from the topic. Offsets it has already learned are skipped. No sample is learned
  twice, and none is lost. Each model has its own snapshot and offset, so the learner starts
  from the oldest of them and skips, per model, what that model's snapshot already holds.
* similarity samples carry the user's recent items (so the learner keeps no per-user data);
  after each similarity snapshot the learner rewrites, in Redis, the top-K neighbour lists of
  the items whose counts changed (``{prefix}similar:{item}``), for the web endpoint and other
  services;
* uplift samples are decision outcomes (:mod:`models.attribution`): the uplift model learns them,
  and the learner exports the treated-minus-control conversion per action, channel and segment,
  with its 95% interval, as gauges (since the learner started);
* churn and value samples are labelled snapshots; the learner scores each before learning it
  (progressive validation) and exports a rolling window's exact ROC AUC, log loss and
  calibration error, and the drifts ``ADWIN`` detects, as Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from pydantic import ValidationError

from agents import metrics
from agents.dlq import dead_letter
from agents.runtime import Runtime
from models import checkpoint
from models.churn import ChurnModel, Prequential
from models.recommend import Recommender
from models.segmentation import Segmenter
from models.uplift_report import UpliftTally
from schemas.dlq import Reason
from schemas.training import ChurnSample, SegmentationSample, SimilaritySample, UpliftSample, parse_sample

log = logging.getLogger(__name__)
MODELS = ("segmentation", "churn", "value", "similarity", "uplift")


class Learner:
    """State of the learner on this worker."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.models: dict[str, Any] = {}
        self.upto: dict[str, int] = {}
        """model -> the last training offset its state reflects."""
        self.next_offset: int | None = None
        """The training offset that follows the last one learned (``None``: must restore)."""
        self.unpublished: dict[str, int] = {}
        """model -> samples learned since its last snapshot."""
        self.last_snapshot = time.monotonic()
        self.lock = asyncio.Lock()
        self.churn_window = Prequential(window=10_000)
        self.uplift = UpliftTally()
        """Treated against control conversion of the outcomes learned since this learner started."""
        self.neighbour_versions: dict[str, int] = {}
        """item -> the row version of its neighbour list in Redis."""

    def _fresh(self, name: str) -> Any:
        return {
            "segmentation": self.rt.learner.segmenter,
            "churn": self.rt.learner.churn,
            "value": self.rt.learner.value,
            "similarity": self.rt.learner.similarity,
            "uplift": self.rt.learner.uplift,
        }[name]()

    async def restore(self, upto: int) -> None:
        """Load the newest snapshots, then learn the samples after them and before ``upto``."""
        headers = await self.rt.sync_models()
        for name in MODELS:
            model, header = self.rt.models.get(name), headers.get(name)
            if model is not None and header is not None:
                self.models[name] = (
                    model.clone_for_scoring() if isinstance(model, Segmenter) else checkpoint.copy(model)
                )
                self.upto[name] = int(header["offset"])
            else:
                self.models[name] = self._fresh(name)
                self.upto[name] = -1
        self.next_offset = min(self.upto.values()) + 1
        self.unpublished = {}
        missed = await self.rt.read_training(self.next_offset, upto) if upto > self.next_offset else []
        for n, (offset, value) in enumerate(missed):
            self._learn(offset, value)
            if n % 200 == 199:
                await asyncio.sleep(0)  # a long catch-up must not hold up the worker's other agents
        log.info("learner restored %s; %d later samples read from the topic", self.upto, len(missed))

    def _learn(self, offset: int, value: bytes | None) -> None:
        # a sample that is none of the typed records (no model name, say) raises: a dead letter
        sample = parse_sample(value or b"null")
        name = sample.model
        self.next_offset = offset + 1
        if offset <= self.upto.get(name, -1):
            return  # this model's snapshot already holds it
        model = self.models[name]
        if isinstance(sample, SegmentationSample | SimilaritySample):
            model.learn_one(sample.x)
        elif isinstance(sample, ChurnSample):
            assert isinstance(model, ChurnModel)
            self.churn_window.add(model.predict_proba_one(sample.x)[True], sample.y)  # before learning
            model.learn_one(sample.x, sample.y)
            if model.drift_detected:
                metrics.CHURN_DRIFTS.inc()
                log.warning(
                    "churn model: drift detected in the error stream after %d labels", model.n_learned
                )
        elif isinstance(sample, UpliftSample):
            model.learn_one(sample.x, sample.y)
            for row in self.uplift.rows(only=self.uplift.add(sample)):
                if row["uplift"] is not None:
                    metrics.UPLIFT.labels(row["dimension"], row["value"]).set(row["uplift"])
                    metrics.UPLIFT_LOW.labels(row["dimension"], row["value"]).set(row["ci95"][0])
                    metrics.UPLIFT_HIGH.labels(row["dimension"], row["value"]).set(row["ci95"][1])
        else:
            model.learn_one(sample.x, sample.y)
        metrics.LEARNED_SAMPLES.labels(name).inc()
        self.upto[name] = offset
        self.unpublished[name] = self.unpublished.get(name, 0) + 1

    async def on_sample(self, event: Any) -> None:
        message = event.message
        if not self.models or self.next_offset is None or message.offset > self.next_offset:
            await self.restore(upto=message.offset)
        assert self.next_offset is not None
        if message.offset < self.next_offset:
            return  # already learned (in the restored snapshots, or redelivered after a move)
        try:
            self._learn(message.offset, event.value)
        except Exception as exc:  # one bad sample never stops learning
            self.next_offset = message.offset + 1
            await dead_letter(  # an internal topic: the sample is ours, not a producer's
                self.rt.dlq_internal,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=event.value,
                reason=Reason.schema_violation
                if isinstance(exc, ValidationError)
                else Reason.processing_error,
                detail=repr(exc),
                internal=True,
            )
        if sum(self.unpublished.values()) >= self.rt.learner.snapshot_every:
            await self.snapshot()

    async def snapshot(self) -> None:
        """Publish every model that learned anything since its last snapshot."""
        async with self.lock:
            for name, n in list(self.unpublished.items()):
                model = self.models.get(name)
                if not n or model is None:
                    continue
                header: dict[str, Any] = {
                    "model": name,
                    "version": f"{name}-{model.n_learned}",
                    "offset": self.upto[name],
                    "n_learned": model.n_learned,
                    "created_at": time.time(),
                }
                if isinstance(model, Segmenter):
                    model.stabilize()
                    header["segments"] = {
                        str(k): {"description": d, "share": round(model.sizes.get(k, 0.0), 4)}
                        for k, d in model.describe().items()
                    }
                    for k, share in model.sizes.items():
                        metrics.SEGMENT_SHARE.labels(str(k)).set(share)
                if isinstance(model, ChurnModel):
                    header["validation"] = self._churn_validation(model)
                await self.rt.models_topic.send(key=name.encode(), value=checkpoint.encode(model, header))
                metrics.SNAPSHOTS.labels(name).inc()
                self.unpublished[name] = 0
                if isinstance(model, Recommender):
                    await self._publish_neighbours(model)
            self.last_snapshot = time.monotonic()

    async def _publish_neighbours(self, model: Recommender) -> None:
        """Rewrite in Redis the neighbour lists of the items whose counts changed."""
        changed = model.attach(self.rt.catalog).changed_since(self.neighbour_versions)
        lists: dict[str, list[tuple[str, float]]] = {}
        for n, item in enumerate(changed):
            lists[item] = model.similar(item, self.rt.learner.neighbours_k)
            if n % 200 == 199:
                await asyncio.sleep(0)  # long publishes must not starve the worker's other agents
        try:
            await self.rt.mirror.put_neighbours(lists)
        except Exception as exc:  # Redis is down: the snapshot is published; the lists wait
            metrics.REDIS_ERRORS.labels("neighbours").inc()
            log.warning(
                "neighbour lists of %d items not written to Redis (retried at the next snapshot): %r",
                len(lists),
                exc,
            )
            return  # the versions stay old, so the next snapshot writes these lists again
        self.neighbour_versions.update(changed)
        metrics.NEIGHBOUR_LISTS.inc(len(lists))

    def _churn_validation(self, model: ChurnModel) -> dict[str, Any]:
        """Progressive validation over the last labels (each scored before it was learned)."""
        w = self.churn_window
        out = {
            "window": len(w.pairs),
            "auc": w.auc(),
            "log_loss": w.log_loss(),
            "ece": w.ece(),
            "drifts": model.n_drifts,
        }
        for key, gauge in (
            ("auc", metrics.CHURN_AUC),
            ("log_loss", metrics.CHURN_LOG_LOSS),
            ("ece", metrics.CHURN_ECE),
        ):
            figure = out[key]
            if figure is not None:
                gauge.set(figure)
        return out

    async def snapshot_if_idle(self) -> None:
        """Publish when samples have waited ``snapshot_interval_s`` (wall time); never raises.

        A failure (Kafka down during the publish) is logged and tried again on the next tick:
        the timer that calls this is a Faust service, and an exception would end the worker.
        """
        if not (
            any(self.unpublished.values())
            and time.monotonic() - self.last_snapshot >= self.rt.learner.snapshot_interval_s
        ):
            return
        try:
            await self.snapshot()
        except Exception as exc:
            log.warning("idle snapshot failed (tried again on the next tick): %r", exc)


def register(app: Any, rt: Runtime) -> None:
    learner = Learner(rt)

    @app.agent(rt.training, name="learner")
    async def learn(stream: Any) -> None:
        async for event in stream.events():
            try:
                await learner.on_sample(event)
            except Exception:  # Kafka failed during a restore or a publish: start over from the
                log.exception("learner failed; it restores from the newest snapshot on the next sample")
                learner.models = {}  # snapshot, reading this sample again from the topic

    @app.timer(interval=max(1.0, rt.learner.snapshot_interval_s / 3))
    async def snapshot_idle() -> None:
        await learner.snapshot_if_idle()
