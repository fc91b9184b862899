"""Write-behind mirror of profiles to Redis, for readers outside the worker.

Writes are collected in memory and flushed in one pipelined round trip every
``flush_interval_s`` (wall time), so the per-event cost is a dict assignment. After every table
recovery the worker re-mirrors the profiles it owns (see ``agents.users.resync_mirror``), so a
crash between a table write and a flush leaves Redis stale only until the restart completes.

Keys: ``{prefix}profile:{canonical}`` (JSON); canonical is ``u:<user_id>`` or ``a:<anonymous_id>``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson
import redis.asyncio as aioredis

from agents import metrics
from agents.runtime import Mirrored

log = logging.getLogger(__name__)
_CHUNK = 2_000


class RedisMirror:
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self._dirty: dict[str, Mirrored] = {}

    def key(self, canonical: str) -> str:
        return f"{self.prefix}profile:{canonical}"

    def put(self, key: str, value: Mirrored) -> None:
        self._dirty[key] = value

    @property
    def pending(self) -> int:
        return len(self._dirty)

    async def flush(self) -> int:
        """Write every pending profile in one pipeline; on failure keep them for the next flush."""
        if not self._dirty:
            return 0
        batch, self._dirty = self._dirty, {}
        try:
            items = list(batch.items())
            for start in range(0, len(items), _CHUNK):
                async with self.client.pipeline(transaction=False) as pipe:
                    for canonical, value in items[start : start + _CHUNK]:
                        pipe.set(self.key(canonical), value.public_json())
                    await pipe.execute()
        except Exception as exc:
            metrics.MIRROR_ERRORS.inc()
            log.warning("redis mirror flush of %d profiles failed (will retry): %r", len(batch), exc)
            batch.update(self._dirty)  # newer writes win
            self._dirty = batch
            return 0
        metrics.MIRROR_FLUSHES.inc()
        return len(batch)

    async def run(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.flush()

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
