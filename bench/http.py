"""Latency of the worker's read endpoints under load from a local client.

Against a running worker (``make run`` starts one), reads the user ids and item ids it has
mirrored to Redis, then sends ``--requests`` requests with ``--concurrency`` in flight to
``GET /users/{id}/recommendations`` and ``GET /items/{id}/similar`` and prints the latency
p50/p99 and the requests/s of each.

    python -m bench.http --url http://127.0.0.1:6066 --requests 2000 --concurrency 8
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis


async def _ids(redis_url: str, prefix: str) -> tuple[list[str], list[str]]:
    client = aioredis.Redis.from_url(redis_url)
    users: list[str] = []
    items: set[str] = set()
    try:
        async for key in client.scan_iter(f"{prefix}profile:u:*", count=1000):
            raw = await client.get(key)
            if raw is None:
                continue
            profile = orjson.loads(raw)
            users.append(key.decode().split("profile:u:", 1)[1])
            items.update(profile.get("item_views") or {})
            if len(users) >= 5_000:
                break
    finally:
        await client.aclose()
    return users, sorted(items)


async def _load(url: str, paths: list[str], concurrency: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[str] = asyncio.Queue()
    for p in paths:
        queue.put_nowait(p)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            path = queue.get_nowait()
            t = time.perf_counter()
            response = await client.get(url + path)
            latencies.append(time.perf_counter() - t)
            errors += response.status_code != 200

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "requests_per_s": round(len(latencies) / elapsed, 1),
        "p50_ms": round(1e3 * latencies[len(latencies) // 2], 2),
        "p99_ms": round(1e3 * latencies[int(len(latencies) * 0.99)], 2),
    }


async def main(args: argparse.Namespace) -> None:
    users, items = await _ids(args.redis, args.prefix)
    if not users or not items:
        raise SystemExit("no mirrored users or items in Redis: start a worker and produce events first")
    rng = random.Random(1)
    out = {"users": len(users), "items": len(items), "concurrency": args.concurrency}
    recs = [f"/users/{rng.choice(users)}/recommendations" for _ in range(args.requests)]
    similar = [f"/items/{rng.choice(items)}/similar" for _ in range(args.requests)]
    out["recommendations"] = await _load(args.url, recs, args.concurrency)
    out["similar"] = await _load(args.url, similar, args.concurrency)
    print(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode())


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", default="http://127.0.0.1:6066")
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    ap.add_argument("--prefix", default="nba:")
    ap.add_argument("--requests", type=int, default=2_000)
    ap.add_argument("--concurrency", type=int, default=8)
    asyncio.run(main(ap.parse_args()))
