"""Where a simulated stream goes: a JSONL file (with the truth beside it) or the Kafka broker.

JSONL format, one record a line: ``{"topic": "events.app.view", "key": "...", "value": {...}}``,
topics without the deployment prefix, in delivery order (event time with the world's disorder).
The catalog comes first, on ``catalog.items``. ``nba replay`` and ``nba evaluate`` read it back.

On the broker, each record's timestamp is the producer's clock of the simulated world: the wall
clock, or the record's delivery time when the world runs ahead of it (a world dated in the
future), so that the worker's clock-skew rule (``time.max_future_skew_s``) holds for either.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from lab.sim.world import Emitted, World


def producer_clock_ms(delivered: float) -> int:
    """The record timestamp of a simulated record delivered at ``delivered`` (event time, s):
    the wall clock, or the delivery time when the simulated world is ahead of the wall clock."""
    return int(max(time.time(), delivered) * 1000)


def catalog_records(world: World) -> list[Emitted]:
    return [
        Emitted(
            world.start_ts,
            -i,
            "catalog.items",
            it.item_id,
            {
                "item_id": it.item_id,
                "kind": it.kind,
                "title": it.title,
                "category": it.category,
                "tags": [it.category, it.kind],
                "price": it.price,
                "series_id": it.series_id,
                "series_part": it.series_part,
            },
        )
        for i, it in enumerate(world.catalog)
    ]


def _progress(world: World) -> tqdm:
    return tqdm(total=world.config.days, unit="day", desc="simulated days", dynamic_ncols=True)


def write_jsonl(world: World, path: Path) -> dict[str, Any]:
    """Run the world into ``path``; write ``<path>.truth.json``; return a summary."""
    started, n = time.perf_counter(), 0
    with path.open("wb") as fh, _progress(world) as bar:
        for rec in catalog_records(world):
            fh.write(orjson.dumps({"topic": rec.topic, "key": rec.key, "value": rec.value}) + b"\n")
        while world.day < world.config.days:
            batch = world.advance()
            fh.writelines(
                orjson.dumps({"topic": r.topic, "key": r.key, "value": r.value}) + b"\n" for r in batch
            )
            n += len(batch)
            bar.update(1)
            bar.set_postfix(events=n, rate=f"{n / (time.perf_counter() - started):,.0f}/s")
    truth_path = path.with_name(path.name + ".truth.json")
    truth_path.write_bytes(orjson.dumps(world.truth()))
    seconds = time.perf_counter() - started
    return {
        "records": n,
        "seconds": round(seconds, 1),
        "records_per_s": round(n / seconds),
        "bytes": path.stat().st_size,
        "truth": str(truth_path),
    }


async def write_kafka(world: World, producer: Any, prefix: str, rate: float | None) -> dict[str, Any]:
    """Run the world onto the broker (topics under ``prefix``), at most ``rate`` records/s (wall)."""
    started, n = time.perf_counter(), 0
    with _progress(world) as bar:
        for rec in catalog_records(world):
            await producer.send(
                prefix + rec.topic, key=rec.key.encode() if rec.key else None, value=orjson.dumps(rec.value)
            )
        while world.day < world.config.days:
            for r in world.advance():
                if rate:
                    ahead = started + n / rate - time.perf_counter()
                    if ahead > 0:
                        await asyncio.sleep(ahead)
                await producer.send(
                    prefix + r.topic,
                    key=r.key.encode() if r.key else None,
                    value=orjson.dumps(r.value),
                    timestamp_ms=producer_clock_ms(r.delivered),
                )
                n += 1
            bar.update(1)
            bar.set_postfix(events=n, rate=f"{n / (time.perf_counter() - started):,.0f}/s")
        await producer.flush()
    seconds = time.perf_counter() - started
    return {"records": n, "seconds": round(seconds, 1), "records_per_s": round(n / seconds)}
