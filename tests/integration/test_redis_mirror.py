"""The Redis mirror notices a loss of its data at the next flush, even when the flush itself
rewrites the marker (issue 18, found by the fault suite: under a steady stream, a ``FLUSHALL``
between two marker checks was hidden by the next flush's marker write, and the profiles not
written since stayed missing while ``/readyz`` said ready)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import orjson

from app.redis_mirror import RedisMirror


@dataclass
class _Profile:
    name: str
    segment: int | None = None
    merged_into: str | None = None

    def public_json(self) -> bytes:
        return orjson.dumps({"name": self.name})


async def test_a_flush_after_a_loss_re_mirrors_every_profile(redis_client) -> None:
    prefix = f"itm{uuid.uuid4().hex[:8]}:"
    mirror = RedisMirror(redis_client, prefix)
    owned = {"u:quiet": _Profile("quiet"), "u:busy": _Profile("busy")}
    relisted: list[int] = []

    async def on_lost() -> None:  # what the worker does: re-mirror every profile it owns
        relisted.append(len(owned))
        for key, p in owned.items():
            mirror.put(key, p)

    for key, p in owned.items():
        mirror.put(key, p)
    assert await mirror.flush() == 2
    assert await mirror.check_marker(on_lost) is False
    # Redis loses this mirror's data (FLUSHALL on a shared server would hit other tests' keys)
    keys = [k async for k in redis_client.scan_iter(match=f"{prefix}*")]
    assert len(keys) == 3  # two profiles and the marker
    await redis_client.delete(*keys)
    mirror.put("u:busy", _Profile("busy", segment=None))  # a new event of one user only
    assert await mirror.flush() == 1  # this flush writes the marker again...
    assert mirror.lost  # ...but saw it gone first
    assert await mirror.check_marker(on_lost) is True and relisted == [2]
    assert mirror.resyncing
    assert await mirror.flush() == 2
    assert not mirror.resyncing
    assert await redis_client.get(mirror.key("u:quiet")) == b'{"name":"quiet"}'
    assert await mirror.check_marker(on_lost) is False and relisted == [2]
    await redis_client.delete(*[k async for k in redis_client.scan_iter(match=f"{prefix}*")])
