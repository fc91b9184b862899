"""What the agents are handed by the app: topics, tables, the Redis mirror and the rules.

Agents import no settings: the app converts settings into this object.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

from models.catalog import CatalogEntry
from models.churn import ChurnModel, ValueModel
from models.clock import PartitionClock
from models.recommend import Recommender
from models.segmentation import Segmenter
from models.uplift import UpliftModel
from models.user_step import StepConfig
from schemas.validate import ValidationPolicy


class Mirror(Protocol):
    """Write-behind copy of profiles for readers outside the worker.

    ``put`` takes the live object; it is encoded (``public_json()``) when the mirror flushes, so
    a user with many events between two flushes is encoded once.
    """

    def put(self, key: str, value: Mirrored) -> None: ...

    def delete(self, key: str) -> None: ...

    async def put_neighbours(self, lists: dict[str, list[tuple[str, float]]]) -> None: ...


class Mirrored(Protocol):
    segment: int | None
    merged_into: str | None

    def public_json(self) -> bytes: ...


class JsonTable(MutableMapping[str, Any]):
    """A Faust table of ``str -> bytes`` seen as ``str -> JSON value`` (values encoded with orjson).

    Assigning a value is what writes the changelog: mutate a copy and assign it back.
    """

    def __init__(self, table: Any) -> None:
        self.table = table

    def __getitem__(self, key: str) -> Any:
        raw = self.table.get(key)
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def __setitem__(self, key: str, value: Any) -> None:
        self.table[key] = orjson.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.table[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.keys())

    def __len__(self) -> int:
        return len(self.table)


@dataclass(frozen=True, slots=True)
class TimeRules:
    """Event-time rules, seconds of event time."""

    dedupe_window_s: float
    lateness_s: float
    backfill_max_age_s: float
    due_bucket_s: float
    watermark_support: int = 3
    max_future_skew_s: float = 600.0


@dataclass(frozen=True, slots=True)
class LearnerRules:
    """How the learner trains and publishes the shared models."""

    segmenter: Callable[[], Segmenter]
    """Builds a fresh segmentation model (when there is no snapshot to restore)."""
    churn: Callable[[], ChurnModel] = ChurnModel
    value: Callable[[], ValueModel] = ValueModel
    similarity: Callable[[], Recommender] = Recommender
    uplift: Callable[[], UpliftModel] = UpliftModel
    neighbours_k: int = 10
    """Neighbours per item in the Redis lists."""
    snapshot_every: int = 1_000
    snapshot_interval_s: float = 30.0


@dataclass
class Runtime:
    """Everything the agents use, complete when constructed: no field waits to be filled in."""

    prefix: str
    validation: ValidationPolicy
    time: TimeRules
    step: StepConfig
    no_send: bool
    mirror: Mirror
    # Faust topics and tables (typed Any: faust ships no type information we can check against)
    ingress: Any
    consent: Any
    feedback: Any
    erase: Any
    decisions: Any
    user_stream: Any
    dlq: Any
    """``events.dlq``: what producers sent and the worker refused."""
    dlq_internal: Any
    """``nba.dlq-internal``: messages of internal topics the worker could not process."""
    actions: Any
    lifecycle: Any
    training: Any
    models_topic: Any
    identity: Any
    """anonymous id -> linked user id (bytes)."""
    profiles: Any
    """canonical user -> Profile (orjson bytes)."""
    clocks_table: JsonTable
    """partition -> PartitionClock dict."""
    due: JsonTable
    """due bucket -> members (see models.due)."""
    erased: Any
    """erased_key(canonical) -> erase time (bytes): the hashed suppression list."""
    sync_models: Callable[[], Awaitable[dict[str, dict[str, Any]]]]
    """Waits until ``models`` holds every snapshot published so far; returns their headers."""
    read_training: Callable[[int, int], Awaitable[list[tuple[int, bytes | None]]]]
    """Reads the training samples at offsets [start, end) straight from the topic."""
    policy_ready: asyncio.Event
    """Set once the policy changes on ``nba.config`` that existed at start are applied: until
    then the users agent waits, so that a restart never decides under a lifted kill switch."""
    learner: LearnerRules = field(default_factory=lambda: LearnerRules(Segmenter))
    models: Mapping[str, Any] = field(default_factory=dict)
    """The latest model snapshots by name (``segmentation``, ``churn``, ``value``, ``similarity``)."""
    erase_salt: bytes = b""
    """Key of the suppression list's hash (``NBA_ERASE__SALT``)."""
    catalog: Mapping[str, CatalogEntry] = field(default_factory=dict)
    clocks: dict[int, PartitionClock] = field(default_factory=dict)
    """In-memory clocks of the partitions this worker owns (cleared on rebalance)."""
    profile_cache: OrderedDict[str, Any] = field(default_factory=OrderedDict)
    """Decoded profiles, most recently used last (cleared on rebalance); the table stays the truth."""
    profile_cache_size: int = 10_000
    """Decoded profiles kept in memory (~15 KB each as Python objects: see bench/README.md)."""
