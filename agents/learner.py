"""``learner``: the one instance that trains the shared models, and publishes their snapshots.

The pattern every shared model follows (segmentation now; churn and similarity reuse it):

* every worker sends training samples to ``nba.training``, which has **one partition**, so the
  consumer group gives it to exactly one worker: that worker's ``learner`` is the only learner;
* the learner learns each sample once, and every ``snapshot_every`` samples (or
  ``snapshot_interval_s`` wall seconds with samples pending) publishes a snapshot to the compacted
  ``nba.models`` topic; the snapshot's header records the training offset it reflects;
* every worker follows ``nba.models`` (:mod:`app.model_store`) and scores with the latest
  snapshot, so all workers assign the same segments;
* samples are acknowledged (and so their offsets committed) only once a snapshot that contains
  them has been published: after a crash or a move of the partition, the learner restores the
  newest snapshot and skips the offsets it already reflects. No sample is learned twice, and
  none is lost.

The learner restores from the snapshots on its first sample and whenever the offsets it receives
jump past what it learned (another instance learned in between); offsets it already learned are
acknowledged and skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson

from agents import metrics
from agents.dlq import dead_letter
from agents.runtime import Runtime
from models import checkpoint
from models.segmentation import Segmenter
from schemas.dlq import Reason

log = logging.getLogger(__name__)
MODEL = "segmentation"


class Learner:
    """State of the learner on this worker."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.model: Segmenter | None = None
        self.next_offset: int | None = None
        """The training offset that follows the last one learned (``None``: must restore)."""
        self.pending: list[Any] = []
        """Events learned but not yet in a published snapshot (not acknowledged)."""
        self.last_snapshot = time.monotonic()
        self.lock = asyncio.Lock()

    async def restore(self) -> None:
        assert self.rt.sync_models is not None
        headers = await self.rt.sync_models()
        model = self.rt.models.get(MODEL)
        header = headers.get(MODEL)
        if isinstance(model, Segmenter) and header is not None:
            self.model = model.clone_for_scoring()  # a private copy: the store's one is shared
            self.next_offset = int(header["offset"]) + 1
            log.info("learner restored %s at training offset %d", MODEL, header["offset"])
        else:
            self.model = self.rt.learner.segmenter()
            self.next_offset = 0
            log.info("learner starts a new %s model", MODEL)

    async def on_sample(self, stream: Any, event: Any) -> None:
        message = event.message
        if self.model is None or self.next_offset is None or message.offset > self.next_offset:
            # first sample, or a gap: another instance learned in between (the partition moved
            # away and back). Its newest snapshot is the model now; what we held is superseded.
            self.pending.clear()
            await self.restore()
        assert self.model is not None and self.next_offset is not None
        if message.offset < self.next_offset:  # already learned: in the restored snapshot, or
            await stream.ack(event)  # redelivered to us after a move while our model has it
            return
        try:
            sample = orjson.loads(event.value)
            self.model.learn_one(sample["x"])
            metrics.LEARNED_SAMPLES.labels(MODEL).inc()
        except Exception as exc:  # one bad sample never stops learning
            await dead_letter(
                self.rt.dlq,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=event.value,
                reason=Reason.processing_error,
                detail=repr(exc),
            )
        self.next_offset = message.offset + 1
        self.pending.append(event)
        if len(self.pending) >= self.rt.learner.snapshot_every:
            await self.snapshot(stream)

    async def snapshot(self, stream: Any) -> None:
        """Publish the model if samples are pending, then acknowledge them."""
        async with self.lock:
            if not self.pending or self.model is None or self.next_offset is None:
                return
            model = self.model
            model.stabilize()
            header = {
                "model": MODEL,
                "version": f"{MODEL}-{model.n_learned}",
                "offset": self.next_offset - 1,
                "n_learned": model.n_learned,
                "created_at": time.time(),
                "segments": {
                    str(k): {"description": d, "share": round(model.sizes.get(k, 0.0), 4)}
                    for k, d in model.describe().items()
                },
            }
            fut = await self.rt.models_topic.send(key=MODEL.encode(), value=checkpoint.encode(model, header))
            await fut  # delivered before the samples it contains are acknowledged
            metrics.SNAPSHOTS.labels(MODEL).inc()
            for k, share in model.sizes.items():
                metrics.SEGMENT_SHARE.labels(str(k)).set(share)
            for event in self.pending:
                await stream.ack(event)
            self.pending.clear()
            self.last_snapshot = time.monotonic()

    async def snapshot_if_idle(self, stream: Any) -> None:
        if self.pending and time.monotonic() - self.last_snapshot >= self.rt.learner.snapshot_interval_s:
            await self.snapshot(stream)


def register(app: Any, rt: Runtime) -> None:
    learner = Learner(rt)
    streams: list[Any] = []

    @app.agent(rt.training, name="learner")
    async def learn(stream: Any) -> None:
        manual = stream.noack()
        streams.append(manual)
        async for event in manual.events():
            await learner.on_sample(manual, event)

    @app.timer(interval=max(1.0, rt.learner.snapshot_interval_s / 3))
    async def snapshot_idle() -> None:
        for manual in streams:
            await learner.snapshot_if_idle(manual)
