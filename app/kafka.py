"""Kafka plumbing outside Faust: client options from settings, and topic creation/verification."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.security import kafka_security
from app.settings import Settings
from app.topics import TopicSpec, topic_specs

log = logging.getLogger(__name__)


def client_kwargs(settings: Settings) -> dict[str, Any]:
    """Options every aiokafka client of this service uses (bootstrap, security)."""
    return {"bootstrap_servers": settings.kafka.bootstrap, **kafka_security(settings)}


@dataclass(frozen=True, slots=True)
class TopicReport:
    created: list[str]
    existing: list[str]
    mismatched: list[str]
    """Topics whose partition count differs from the configuration (never changed automatically:
    adding partitions moves keys between partitions and so between table shards)."""


async def _await_leaders(admin: AIOKafkaAdminClient, names: list[str], timeout_s: float = 30.0) -> None:
    """Wait until every partition of ``names`` has a leader (new topics take a moment)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = await admin.describe_topics(names)
        if all(
            d.get("error_code", 0) == 0 and d["partitions"] and all(p["leader"] >= 0 for p in d["partitions"])
            for d in described
        ):
            return
        await asyncio.sleep(0.2)
    log.warning("some new topics still have partitions without a leader after %.0fs", timeout_s)


async def ensure_topics(settings: Settings, specs: list[TopicSpec] | None = None) -> TopicReport:
    """Create missing topics with their configured partitions and retention; verify the rest."""
    specs = specs if specs is not None else topic_specs(settings)
    admin = AIOKafkaAdminClient(**client_kwargs(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(s.name, s.partitions, settings.kafka.replication, topic_configs=s.config)
                    for s in missing
                ],
                validate_only=False,
            )
            await _await_leaders(admin, [s.name for s in missing])
        present = [s for s in specs if s.name in existing]
        mismatched: list[str] = []
        if present:
            described = await admin.describe_topics([s.name for s in present])
            counts = {d["topic"]: len(d["partitions"]) for d in described}
            for s in present:
                if counts.get(s.name) != s.partitions:
                    mismatched.append(
                        f"{s.name}: has {counts.get(s.name)} partitions, configured {s.partitions}"
                    )
        return TopicReport([s.name for s in missing], [s.name for s in present], mismatched)
    finally:
        await admin.close()
