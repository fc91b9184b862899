"""Every worker's copy of the latest model snapshots (the compacted ``nba.models`` topic).

Workers score with :attr:`ModelStore.models` (the newest snapshot of each model); the learner
restores from it at start. Snapshots that fail to decode, or whose state format is not the
one this version reads (:func:`models.checkpoint.compatible`), are logged and skipped, keeping
the previous one (none, after an upgrade: the learner then retrains from the training topic).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.compacted import follow
from models import checkpoint

log = logging.getLogger(__name__)


class ModelStore:
    def __init__(
        self,
        topic: str,
        client_kwargs: dict[str, Any],
        prepare: Callable[[str, Any], Any] | None = None,
    ) -> None:
        self.topic = topic
        self.client_kwargs = client_kwargs
        self.prepare = prepare
        """Applied to every decoded model (name, model) before it is served."""
        self.models: dict[str, Any] = {}
        self.headers: dict[str, dict[str, Any]] = {}
        self.loaded = asyncio.Event()
        """Set once the snapshots that existed at start have been read."""
        self.position = 0
        """The offset after the last record applied (the topic has one partition)."""

    def apply(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        self.position = max(self.position, offset + 1)
        if key is None or value is None:
            return
        name = key.decode()
        try:
            header, model = checkpoint.decode(value)
        except Exception as exc:  # a corrupt snapshot must not stop scoring with the previous one
            log.warning("skipping undecodable %s snapshot at offset %d: %r", name, offset, exc)
            return
        if not checkpoint.compatible(header, model):  # written by a version with another layout
            log.warning(
                "skipping %s snapshot at offset %d: state format %s, this version reads %d; "
                "the learner retrains from the training topic and publishes a new one",
                name,
                offset,
                header.get("format", 1),
                checkpoint.snapshot_format(model),
            )
            return
        if self.prepare is not None:
            model = self.prepare(name, model)
        self.models[name], self.headers[name] = model, header

    async def run(self) -> None:
        await follow(self.topic, self.client_kwargs, self.apply, self.loaded)

    async def sync(self, timeout_s: float = 60.0) -> dict[str, dict[str, Any]]:
        """Wait until every snapshot published so far is applied; the headers by model name."""
        await asyncio.wait_for(self.loaded.wait(), timeout_s)
        consumer = AIOKafkaConsumer(enable_auto_commit=False, **self.client_kwargs)
        await consumer.start()
        try:
            tp = TopicPartition(self.topic, 0)
            end = (await consumer.end_offsets([tp]))[tp]
        finally:
            await consumer.stop()
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.position < end:
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"model snapshots not read up to offset {end} in {timeout_s}s")
            await asyncio.sleep(0.05)
        return dict(self.headers)
