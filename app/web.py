"""HTTP endpoints on the worker's web port: ``/metrics``, ``/healthz``, ``/readyz``, ``/users/{id}``,
``/users/{id}/recommendations``, ``/items/{id}/similar``, ``/segments``.

Recommendations run on event time: a user's list is computed as of their last event
(``last_seen``), from the mirrored profile and the latest similarity snapshot, so it is the list
the worker's decision would use. An item's neighbours come from Redis (written by the learner),
or from the snapshot for an item no list was written for yet (a new item: content only).

``/readyz`` answers 200 only when Kafka answers a metadata request, Redis answers PING (and is
not being refilled after it lost its data), the
worker owns partitions, is not rebalancing, and has committed within ``commit_stall_s`` whenever
it has read messages it has not committed yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hmac
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiokafka.client import AIOKafkaClient
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from agents import metrics
from app.model_store import ModelStore
from app.redis_mirror import RedisMirror
from models.catalog import CatalogEntry
from models.profile import Profile
from models.recommend import Recommender
from models.user_step import recommendations_for


class RedisResyncing(Exception):
    """Redis answers, but lost the mirrored profiles and the copy is not flushed yet."""


class CommitTracker:
    """Remembers when offsets were last committed (a Faust sensor calls :meth:`committed`)."""

    def __init__(self) -> None:
        self.last_commit = time.monotonic()

    def committed(self) -> None:
        self.last_commit = time.monotonic()


class Readiness:
    def __init__(
        self,
        app: Any,
        kafka_kwargs: dict[str, Any],
        mirror: RedisMirror,
        commits: CommitTracker,
        commit_stall_s: float = 30.0,
        timeout_s: float = 2.0,
    ) -> None:
        self.app = app
        self.kafka_kwargs = kafka_kwargs
        self.mirror = mirror
        self.commits = commits
        self.commit_stall_s = commit_stall_s
        self.timeout_s = timeout_s
        self._client: AIOKafkaClient | None = None

    async def _kafka(self) -> bool:
        if self._client is None:
            self._client = AIOKafkaClient(**self.kafka_kwargs)
            await asyncio.wait_for(self._client.bootstrap(), self.timeout_s)
        await asyncio.wait_for(self._client.fetch_all_metadata(), self.timeout_s)
        return True

    async def _redis(self) -> bool:
        if self.mirror.resyncing:
            raise RedisResyncing("lost its data; profiles are being copied again")
        return bool(await asyncio.wait_for(self.mirror.client.ping(), self.timeout_s))

    def _committing(self) -> tuple[bool, str]:
        consumer = self.app.consumer
        assignment = consumer.assignment()
        if not assignment:
            return False, "no partitions assigned"
        if self.app.rebalancing:
            return False, "rebalancing"
        mon = self.app.monitor
        read, done = mon.tp_read_offsets, mon.tp_committed_offsets
        uncommitted = any(read.get(tp, -1) > (done.get(tp) or -1) for tp in assignment)
        stalled = time.monotonic() - self.commits.last_commit > self.commit_stall_s
        if uncommitted and stalled:
            return False, f"no commit for {self.commit_stall_s:.0f}s with messages pending"
        return True, "ok"

    async def check(self) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for name, probe in (("kafka", self._kafka), ("redis", self._redis)):
            try:
                result[name] = "ok" if await probe() else "down"
            except Exception as exc:
                if name == "kafka" and self._client is not None:
                    await self._client.close()
                    self._client = None
                result[name] = f"down: {type(exc).__name__}"
        _, why = self._committing()
        result["partitions"] = why
        result["ready"] = all(v == "ok" for v in result.values())
        return result


async def update_lag(app: Any) -> None:
    """Set the consumer-lag gauge: log end offset minus committed offset (the fetch position
    before this process's first commit), for the partitions the agents consume."""
    consumer = app.consumer
    committed = app.monitor.tp_committed_offsets
    for tp in consumer.assignment():
        if tp.topic.endswith("-changelog"):
            continue  # table recovery reads these; they have no consumer-group lag
        try:
            high = consumer.highwater(tp)
            done = committed.get(tp)
            if done is None:
                done = await consumer.position(tp)
        except Exception:
            continue
        if high is None or done is None:
            continue
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(max(0, high - done))


def authorised(headers: Mapping[str, str], token: str | None) -> bool:
    """``True`` when no token is required, or the request carries ``Authorization: Bearer <token>``.

    >>> authorised({}, None), authorised({"Authorization": "Bearer s3"}, "s3"), authorised({}, "s3")
    (True, True, False)
    >>> authorised({"Authorization": "Bearer s4"}, "s3"), authorised({"Authorization": "s3"}, "s3")
    (False, False)
    """
    if token is None:
        return True
    scheme, _, given = headers.get("Authorization", "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())


def _guarded(token: str | None) -> Callable[[Callable[..., Awaitable[Any]]], Callable[..., Awaitable[Any]]]:
    """Wrap a read endpoint: 401 without the bearer token (when one is configured)."""

    def wrap(handler: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        @functools.wraps(handler)
        async def checked(self: Any, request: Any, **kwargs: Any) -> Any:
            if not authorised(request.headers, token):
                return self.json(
                    {"error": "a bearer token is required"},
                    status=401,
                    headers={"WWW-Authenticate": 'Bearer realm="nba"'},
                )
            return await handler(self, request, **kwargs)

        return checked

    return wrap


def _k(request: Any, default: int = 10) -> int:
    try:
        return max(1, min(100, int(request.query.get("k", default))))
    except ValueError:
        return default


def _recommender(store: ModelStore, catalog: Mapping[str, CatalogEntry]) -> Recommender | None:
    model = store.models.get("similarity")
    return model.attach(catalog) if isinstance(model, Recommender) else None


def register(
    app: Any,
    readiness: Readiness,
    mirror: RedisMirror,
    store: ModelStore,
    catalog: Mapping[str, CatalogEntry] | None = None,
    history: int = 20,
    token: str | None = None,
) -> None:
    """Attach the endpoints; ``history``: how many of a user's recent items seed their
    recommendations (the worker's ``StepConfig.history``); ``token``: the bearer token the read
    endpoints (users, items, segments) require, if any. ``/metrics``, ``/healthz`` and
    ``/readyz`` stay open."""
    catalog = catalog if catalog is not None else {}
    guarded = _guarded(token)

    @app.page("/metrics")
    async def prometheus(self: Any, request: Any) -> Any:
        await update_lag(app)
        if "segmentation" in store.headers:
            with contextlib.suppress(Exception):  # Redis down: /readyz says so; keep serving metrics
                for segment, n in (await mirror.segment_sizes()).items():
                    metrics.SEGMENT_USERS.labels(str(segment)).set(n)
        # aiohttp takes the charset separately from the content type
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        return self.json({"status": "alive"})

    @app.page("/readyz")
    async def readyz(self: Any, request: Any) -> Any:
        result = await readiness.check()
        return self.json(result, status=200 if result["ready"] else 503)

    @app.page("/users/{user_id}")
    @guarded
    async def user(self: Any, request: Any, user_id: str) -> Any:
        profile = await mirror.read_profile(user_id)
        if profile is None:
            return self.json({"error": "unknown user", "user_id": user_id}, status=404)
        return self.json(profile)

    @app.page("/users/{user_id}/recommendations")
    @guarded
    async def recommendations(self: Any, request: Any, user_id: str) -> Any:
        view = await mirror.read_profile(user_id)
        if view is None:
            return self.json({"error": "unknown user", "user_id": user_id}, status=404)
        model = _recommender(store, catalog)
        if model is None:
            return self.json(
                {"user_id": user_id, "model": None, "recommendations": [], "note": "no snapshot yet"}
            )
        profile = Profile.from_public(view)
        now = profile.last_seen or 0.0
        recs = recommendations_for(profile, now, model, history, profile.preferred_channel, _k(request))
        return self.json(
            {
                "user_id": user_id,
                "model": store.headers["similarity"]["version"],
                "as_of": profile.last_seen,
                "recommendations": [
                    {"item_id": r.item_id, "score": r.score, "reason": r.reason} for r in recs
                ],
            }
        )

    @app.page("/items/{item_id}/similar")
    @guarded
    async def similar(self: Any, request: Any, item_id: str) -> Any:
        k = _k(request)
        neighbours, source = await mirror.similar(item_id, k), "redis"
        model = _recommender(store, catalog)
        if not neighbours and model is not None:
            neighbours, source = model.similar(item_id, k), "snapshot"
        if not neighbours and item_id not in catalog:
            return self.json({"error": "unknown item", "item_id": item_id}, status=404)
        return self.json(
            {
                "item_id": item_id,
                "source": source,
                "model": store.headers.get("similarity", {}).get("version"),
                "similar": [{"item_id": j, "similarity": round(s, 6)} for j, s in neighbours],
            }
        )

    @app.page("/segments")
    @guarded
    async def segments(self: Any, request: Any) -> Any:
        header = store.headers.get("segmentation")
        if header is None:
            return self.json({"model": None, "segments": [], "note": "no snapshot yet (still learning)"})
        sizes = await mirror.segment_sizes()
        return self.json(
            {
                "model": header["version"],
                "n_learned": header["n_learned"],
                "training_offset": header["offset"],
                "segments": [
                    {
                        "segment": int(k),
                        "description": v["description"],
                        "users": sizes.get(int(k), 0),
                        "share_of_recent_samples": v["share"],
                    }
                    for k, v in sorted(header["segments"].items(), key=lambda kv: int(kv[0]))
                ],
            }
        )
