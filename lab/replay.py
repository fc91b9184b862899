"""``nba replay``: a log into the ingress topics, in event-time order, at a chosen speed.

Each event is checked by the worker's validator first (so a rejected row is reported here, with
its reason, rather than dead-lettered later). Speed: as fast as possible, or ``speed`` times real
time (the gaps between event times divided by ``speed``, on the wall clock). ``out`` writes the
records to a JSONL file instead of the broker (a dry run).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from tqdm import tqdm

from lab.logs import BEFORE_ALL, Mapping, ReadStats, Rejections, read_ordered
from schemas.validate import Rejected, ValidationPolicy, parse_ingress_topic, validate


@dataclass
class ReplaySummary:
    rows_read: int = 0
    produced: int = 0
    rejected: Rejections = field(default_factory=Rejections)
    seconds: float = 0.0
    sorted_input: bool = True
    spilled_runs: int = 0
    time_offset_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows_read": self.rows_read,
            "produced": self.produced,
            "rejected": dict(self.rejected),
            "rejected_examples": self.rejected.examples,
            "time_offset_s": self.time_offset_s,
            "seconds": round(self.seconds, 2),
            "records_per_s": round(self.produced / self.seconds) if self.seconds else None,
            "sorted_input": self.sorted_input,
            "spilled_runs": self.spilled_runs,
        }


async def replay(
    path: Path,
    *,
    mapping: Mapping | None,
    policy: ValidationPolicy,
    producer: Any | None = None,
    prefix: str = "",
    out: Path | None = None,
    speed: float | None = None,
    max_rows_in_memory: int = 200_000,
    progress: bool = True,
) -> ReplaySummary:
    summary, stats = ReplaySummary(), ReadStats()
    started = time.perf_counter()
    first_ts: float | None = None
    sink = out.open("wb") if out is not None else None
    bar = tqdm(unit="rec", desc="replay", disable=not progress, dynamic_ncols=True)
    try:
        for rec in read_ordered(path, mapping, max_rows_in_memory=max_rows_in_memory, stats=stats):
            bar.update(1)
            parsed = parse_ingress_topic("", rec.topic)
            if parsed is not None:
                raw = orjson.dumps(rec.value)
                key = rec.key.encode() if rec.key else None
                result = validate(
                    raw, topic_channel=parsed[0], topic_type=parsed[1], policy=policy, key=key, check_key=True
                )
                if isinstance(result, Rejected):
                    summary.rejected.add(result.reason.value, f"{rec.topic}: {result.detail}")
                    continue
            if speed and rec.ts != BEFORE_ALL:
                first_ts = rec.ts if first_ts is None else first_ts
                ahead = started + (rec.ts - first_ts) / speed - time.perf_counter()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if sink is not None:
                sink.write(orjson.dumps({"topic": rec.topic, "key": rec.key, "value": rec.value}) + b"\n")
            else:
                assert producer is not None
                await producer.send(
                    prefix + rec.topic,
                    key=rec.key.encode() if rec.key else None,
                    value=orjson.dumps(rec.value),
                )
            summary.produced += 1
        if producer is not None:
            await producer.flush()
    finally:
        bar.close()
        if sink is not None:
            sink.close()
    summary.rows_read = stats.rows
    summary.rejected.merge(stats.rejected)
    summary.time_offset_s = stats.time_offset_s
    summary.sorted_input = stats.sorted_input
    summary.spilled_runs = stats.spilled_runs
    summary.seconds = time.perf_counter() - started
    return summary
