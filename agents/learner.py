"""``learner``: the one instance that trains the shared models, and publishes their snapshots.

The pattern every shared model follows (segmentation now; churn and similarity are to reuse it):

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
  twice, and none is lost.
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
        self.unpublished = 0
        """Samples learned since the last snapshot."""
        self.last_snapshot = time.monotonic()
        self.lock = asyncio.Lock()

    async def restore(self, upto: int) -> None:
        """Load the newest snapshot, then learn the samples after it and before ``upto``."""
        assert self.rt.sync_models is not None and self.rt.read_training is not None
        headers = await self.rt.sync_models()
        model = self.rt.models.get(MODEL)
        header = headers.get(MODEL)
        if isinstance(model, Segmenter) and header is not None:
            self.model = model.clone_for_scoring()  # a private copy: the store's one is shared
            self.next_offset = int(header["offset"]) + 1
        else:
            self.model = self.rt.learner.segmenter()
            self.next_offset = 0
        self.unpublished = 0
        missed = await self.rt.read_training(self.next_offset, upto) if upto > self.next_offset else []
        for offset, value in missed:
            self._learn(offset, value)
        log.info(
            "learner restored %s: snapshot up to offset %d, %d later samples read from the topic",
            MODEL,
            self.next_offset - 1 - len(missed),
            len(missed),
        )

    def _learn(self, offset: int, value: bytes | None) -> None:
        assert self.model is not None
        sample = orjson.loads(value or b"null")
        self.model.learn_one(sample["x"])
        metrics.LEARNED_SAMPLES.labels(MODEL).inc()
        self.next_offset = offset + 1
        self.unpublished += 1

    async def on_sample(self, event: Any) -> None:
        message = event.message
        if self.model is None or self.next_offset is None or message.offset > self.next_offset:
            await self.restore(upto=message.offset)
        assert self.next_offset is not None
        if message.offset < self.next_offset:
            return  # already learned (in the restored snapshot, or redelivered after a move)
        try:
            self._learn(message.offset, event.value)
        except Exception as exc:  # one bad sample never stops learning
            self.next_offset = message.offset + 1
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
        if self.unpublished >= self.rt.learner.snapshot_every:
            await self.snapshot()

    async def snapshot(self) -> None:
        """Publish the model if it learned anything since the last snapshot."""
        async with self.lock:
            if not self.unpublished or self.model is None or self.next_offset is None:
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
            await self.rt.models_topic.send(key=MODEL.encode(), value=checkpoint.encode(model, header))
            metrics.SNAPSHOTS.labels(MODEL).inc()
            for k, share in model.sizes.items():
                metrics.SEGMENT_SHARE.labels(str(k)).set(share)
            self.unpublished = 0
            self.last_snapshot = time.monotonic()

    async def snapshot_if_idle(self) -> None:
        if self.unpublished and time.monotonic() - self.last_snapshot >= self.rt.learner.snapshot_interval_s:
            await self.snapshot()


def register(app: Any, rt: Runtime) -> None:
    learner = Learner(rt)

    @app.agent(rt.training, name="learner")
    async def learn(stream: Any) -> None:
        async for event in stream.events():
            try:
                await learner.on_sample(event)
            except Exception:  # Kafka failed during a restore or a publish: start over from the
                log.exception("learner failed; it restores from the newest snapshot on the next sample")
                learner.model = None  # snapshot, reading this sample again from the topic

    @app.timer(interval=max(1.0, rt.learner.snapshot_interval_s / 3))
    async def snapshot_idle() -> None:
        await learner.snapshot_if_idle()
