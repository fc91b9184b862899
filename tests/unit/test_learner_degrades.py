"""The learner survives a Redis outage (issue 18, finding 1): a failed neighbour-list write is
counted and retried at the next snapshot, and the idle-snapshot timer never raises (before, its
exception ended the worker process)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from typing import Any

from agents import learner as learner_mod
from agents.runtime import Runtime, TimeRules
from models.recommend import Recommender
from models.user_step import StepConfig
from schemas.validate import ValidationPolicy


class _Mirror:
    def __init__(self) -> None:
        self.down = True
        self.lists: dict[str, list[tuple[str, float]]] = {}

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    async def put_neighbours(self, lists: dict[str, list[tuple[str, float]]]) -> None:
        if self.down:
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        self.lists.update(lists)


class _Topic:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.down = False

    async def send(self, *, key: bytes | None = None, value: bytes) -> None:
        if self.down:
            raise ConnectionError("broker gone")
        self.sent.append(value)


def _runtime(mirror: _Mirror, models_topic: _Topic) -> Runtime:
    given = {"prefix", "validation", "time", "step", "no_send", "mirror", "policy_ready", "models_topic"}
    rest = {
        f.name
        for f in dataclasses.fields(Runtime)
        if f.name not in given
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    }
    return Runtime(
        prefix="",
        validation=ValidationPolicy(channels=frozenset({"app"})),
        time=TimeRules(1.0, 1.0, 1.0, 3600.0),
        step=StepConfig(),
        no_send=True,
        mirror=mirror,
        policy_ready=asyncio.Event(),
        models_topic=models_topic,
        **dict.fromkeys(rest),
    )


def _learner(mirror: _Mirror, topic: _Topic) -> learner_mod.Learner:
    rec = Recommender()
    for u in range(5):
        rec.learn_one({"item": "a", "kind": "purchase", "ts": 10.0 * u, "recent": []})
        rec.learn_one({"item": "b", "kind": "purchase", "ts": 10.0 * u + 1, "recent": [["a", 1.0]]})
    lr = learner_mod.Learner(_runtime(mirror, topic))
    lr.models, lr.upto, lr.unpublished = {"similarity": rec}, {"similarity": 9}, {"similarity": 10}
    lr.last_snapshot = time.monotonic() - 3600
    return lr


async def test_a_redis_outage_delays_the_neighbour_lists_and_never_raises() -> None:
    mirror, topic = _Mirror(), _Topic()
    lr = _learner(mirror, topic)
    failures = learner_mod.metrics.REDIS_ERRORS.labels("neighbours")
    before = failures._value.get()
    await lr.snapshot_if_idle()  # Redis down: the snapshot is published, the lists wait
    assert len(topic.sent) == 1 and lr.neighbour_versions == {} and mirror.lists == {}
    assert failures._value.get() == before + 1
    mirror.down = False
    lr.unpublished["similarity"] = 1  # the next snapshot (one more sample learned)
    lr.last_snapshot = time.monotonic() - 3600
    await lr.snapshot_if_idle()
    assert set(mirror.lists) >= {"a", "b"} and set(lr.neighbour_versions) >= {"a", "b"}


async def test_the_idle_snapshot_timer_never_raises_when_kafka_is_down() -> None:
    mirror, topic = _Mirror(), _Topic()
    topic.down = True
    lr = _learner(mirror, topic)
    await lr.snapshot_if_idle()  # logged; tried again on the next tick
    assert lr.unpublished["similarity"] == 10
    topic.down, mirror.down = False, False
    await lr.snapshot_if_idle()
    assert len(topic.sent) == 1 and lr.unpublished["similarity"] == 0
