"""Write-behind mirror of profiles to Redis, for readers outside the worker.

Writes are collected in memory and flushed in one pipelined round trip every
``flush_interval_s`` (wall time), so the per-event cost is a dict assignment. After every table
recovery the worker re-mirrors the profiles it owns (see ``agents.tables.resync_mirror``), so a
crash between a table write and a flush leaves Redis stale only until the restart completes.

Keys: ``{prefix}profile:{canonical}`` (JSON); canonical is ``u:<user_id>`` or ``a:<anonymous_id>``.
``{prefix}similar:{item}``: the item's top-K neighbours (sorted set, score = blended similarity),
rewritten by the learner after each similarity snapshot for the items whose counts changed.
``{prefix}mirror:alive:{token}``: this worker process's marker (a random token), written with
every flush, expiring after 7 days without one. Every flush asks whether it is still there in
the same round trip, before writing it again (and an idle mirror asks every few seconds): when
it is gone while the worker has written before (a ``FLUSHALL``, a Redis restarted without its
data), the mirror calls its ``on_lost`` hook (the worker re-mirrors every profile it owns) and
reports ``resyncing`` until that copy is flushed; ``/readyz`` is not ready meanwhile. (A flush
that rewrote the marker without asking would hide a loss between two checks: the profiles not
written since would stay missing, as the fault suite found under load.)
``{prefix}segment:{id}``: the set of canonical users in segment ``id`` (a user is added to their
segment and removed from every other in the same pipeline, so redelivered writes are harmless;
a merged anonymous profile belongs to none). ``GET /segments`` reads the sizes with ``SCARD``.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis

from agents import metrics
from agents.runtime import Mirrored

log = logging.getLogger(__name__)
_CHUNK = 2_000
_MARKER_TTL_S = 7 * 86_400


class RedisMirror:
    def __init__(self, client: aioredis.Redis, prefix: str, n_segments: int = 0) -> None:
        self.client = client
        self.prefix = prefix
        self.n_segments = n_segments
        self._dirty: dict[str, Mirrored | None] = {}
        """canonical -> the live profile to write, or ``None`` to delete (an erase)."""
        self.written = False
        """A flush has written the marker since this worker started."""
        self.resyncing = False
        """Redis lost its data; the re-mirrored profiles are not all flushed yet."""
        self.lost = False
        """A flush found the marker gone: Redis lost its data since the flush before."""

        self.marker_key = f"{prefix}mirror:alive:{secrets.token_hex(8)}"
        """Per process, so that one worker's marker never hides another worker's loss."""

    def key(self, canonical: str) -> str:
        return f"{self.prefix}profile:{canonical}"

    def segment_key(self, segment: int) -> str:
        return f"{self.prefix}segment:{segment}"

    async def segment_sizes(self) -> dict[int, int]:
        async with self.client.pipeline(transaction=False) as pipe:
            for i in range(self.n_segments):
                pipe.scard(self.segment_key(i))
            sizes = await pipe.execute()
        return dict(enumerate(int(n) for n in sizes))

    def put(self, key: str, value: Mirrored) -> None:
        self._dirty[key] = value

    def delete(self, key: str) -> None:
        self._dirty[key] = None

    @property
    def pending(self) -> int:
        return len(self._dirty)

    async def flush(self) -> int:
        """Write every pending profile in one pipeline; on failure keep them for the next flush."""
        if not self._dirty:
            return 0
        batch, self._dirty = self._dirty, {}
        marker_was_there = True
        try:
            items = list(batch.items())
            for start in range(0, len(items), _CHUNK):
                async with self.client.pipeline(transaction=False) as pipe:
                    if start == 0:
                        pipe.exists(self.marker_key)
                        pipe.set(self.marker_key, b"1", ex=_MARKER_TTL_S)
                    for canonical, value in items[start : start + _CHUNK]:
                        if value is None:  # erased: the profile and every segment membership
                            pipe.delete(self.key(canonical))
                            for i in range(self.n_segments):
                                pipe.srem(self.segment_key(i), canonical)
                            continue
                        pipe.set(self.key(canonical), value.public_json())
                        segment = None if value.merged_into else value.segment
                        if segment is None and not value.merged_into:
                            continue
                        for i in range(self.n_segments):
                            if i == segment:
                                pipe.sadd(self.segment_key(i), canonical)
                            else:
                                pipe.srem(self.segment_key(i), canonical)
                    results = await pipe.execute()
                    if start == 0:
                        marker_was_there = bool(results[0])
        except Exception as exc:
            metrics.MIRROR_ERRORS.inc()
            log.warning("redis mirror flush of %d profiles failed (will retry): %r", len(batch), exc)
            batch.update(self._dirty)  # newer writes win
            self._dirty = batch
            return 0
        metrics.MIRROR_FLUSHES.inc()
        if self.written and not marker_was_there and not self.resyncing:
            self.lost = True
        elif not self.lost:
            self.resyncing = False
        self.written = True
        return len(batch)

    async def check_marker(self, on_lost: Callable[[], Awaitable[object]]) -> bool:
        """``True`` (and ``on_lost`` called) when Redis lost what this worker wrote: found by
        the last flush, or by asking now."""
        if not self.written or self.resyncing:
            return False
        if not self.lost:
            try:
                alive = await self.client.exists(self.marker_key)
            except Exception:
                return False  # Redis is down: the flush's errors say so; check again when it is back
            if alive:
                return False
        self.lost = False
        metrics.REDIS_ERRORS.labels("data_lost").inc()
        log.warning("redis lost the mirrored profiles (marker gone): re-mirroring this worker's profiles")
        self.resyncing = True
        await on_lost()
        return True

    async def run(
        self,
        interval_s: float,
        on_lost: Callable[[], Awaitable[object]] | None = None,
        check_every_s: float = 5.0,
    ) -> None:
        """Flush every ``interval_s`` wall seconds; with ``on_lost``, check for lost data first,
        at most every ``check_every_s`` (one ``EXISTS``, not one per flush)."""
        checked = time.monotonic()
        while True:
            await asyncio.sleep(interval_s)
            if on_lost is not None and (self.lost or time.monotonic() - checked >= check_every_s):
                checked = time.monotonic()
                await self.check_marker(on_lost)
            await self.flush()

    def similar_key(self, item: str) -> str:
        return f"{self.prefix}similar:{item}"

    async def put_neighbours(self, lists: dict[str, list[tuple[str, float]]]) -> None:
        """Replace each item's neighbour list (a sorted set, score = similarity), pipelined."""
        items = list(lists.items())
        for start in range(0, len(items), _CHUNK):
            async with self.client.pipeline(transaction=True) as pipe:
                for item, neighbours in items[start : start + _CHUNK]:
                    pipe.delete(self.similar_key(item))
                    if neighbours:
                        pipe.zadd(self.similar_key(item), dict(neighbours))
                await pipe.execute()

    async def similar(self, item: str, k: int) -> list[tuple[str, float]]:
        """An item's neighbours from Redis, best first (empty when none was published)."""
        rows: list[Any] = await self.client.zrevrange(self.similar_key(item), 0, k - 1, withscores=True)
        return [(bytes(i).decode(), float(s)) for i, s in rows]

    async def read_profile(self, user_id: str) -> dict[str, Any] | None:
        """A user's mirrored profile by user id (or anonymous id), following a merge once."""
        for canonical in (f"u:{user_id}", f"a:{user_id}"):
            raw = await self.client.get(self.key(canonical))
            if raw is None:
                continue
            data: dict[str, Any] = orjson.loads(raw)
            target = data.get("merged_into")
            if target:
                raw = await self.client.get(self.key(target))
                if raw is None:
                    return None
                data = orjson.loads(raw)
            return data
        return None
