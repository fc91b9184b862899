"""Reading event logs for ``nba replay`` and ``nba evaluate``, in event-time order, in bounded memory.

Inputs:

* JSONL written by ``nba simulate`` (``{"topic", "key", "value"}`` a line), or JSONL of bare
  events in our schema (one ``event.v1`` object a line);
* CSV or Parquet with a :class:`Mapping` (command line or a small YAML file) saying which column
  is the user, item, time and type, how source type values map to click/view/share/purchase,
  and optionally the channel, event id, amount and currency.

Every row becomes an ingress record and is checked by the same validator as the worker; rows
that cannot be turned into a valid event are counted with a reason and skipped.

Ordering: a first pass reads only the times. If they are already in order the input is streamed;
if not, it is sorted externally: runs of at most ``max_rows_in_memory`` rows are sorted and
spilled to temporary files, then merged lazily, so memory stays bounded whatever the input size.
"""

from __future__ import annotations

import csv
import dataclasses
import heapq
import math
import os
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import yaml

from schemas.errors import ConfigError
from schemas.events import MAX_YEAR, MIN_YEAR
from schemas.vocabulary import DAY

BEFORE_ALL = -1e18
"""Time of records without one (the catalog): before every event. Finite, because JSON (and so a
spilled sort run) has no infinity."""


@dataclass(frozen=True, slots=True)
class Record:
    """One record on its way to a topic (topic without the deployment prefix)."""

    ts: float
    topic: str
    key: str | None
    value: dict[str, Any]

    def dumps(self) -> bytes:
        return orjson.dumps({"ts": self.ts, "topic": self.topic, "key": self.key, "value": self.value})

    @classmethod
    def loads(cls, line: bytes) -> Record:
        d = orjson.loads(line)
        return cls(d["ts"], d["topic"], d["key"], d["value"])


@dataclass
class Mapping:
    """How a CSV/Parquet log maps onto our events."""

    user: str
    item: str
    time: str
    type: str | None = None
    type_map: dict[str, str] = field(default_factory=dict)
    """Source value -> click | view | share | purchase; rows with unmapped values are rejected."""
    default_type: str | None = None
    """Type of every row when there is no type column (e.g. a ratings log: 'view')."""
    channel: str | None = None
    default_channel: str = "web"
    event_id: str | None = None
    amount: str | None = None
    value: str | None = None
    """An optional value column, such as a rating (or an amount), read by ``purchase_min_value``."""
    purchase_min_value: float | None = None
    """Rows whose ``value`` is at least this count as purchases, whatever their type (for a
    ratings log: ``value: rating``, ``purchase_min_value: 4``, ``default_type: view``)."""
    currency: str | None = None
    default_currency: str = "CNY"
    time_unit: str = "iso"
    """iso, s or ms."""
    time_offset_s: float | str = 0.0
    """Seconds added to every row's time, or ``auto``: the smallest whole number of weeks that
    brings the log's first time into the contract's years (2000..2100), so that weekdays and
    hours of day are kept. A log from before 2000 needs it (its rows are rejected otherwise)."""

    @classmethod
    def from_yaml(cls, path: Path) -> Mapping:
        try:
            data = yaml.safe_load(path.read_text())
            return cls(**data)
        except (yaml.YAMLError, TypeError) as exc:
            raise ConfigError(f"{path}: invalid column mapping: {exc}") from exc


EXAMPLES_PER_REASON = 3


class Rejections(Counter[str]):
    """Rejected rows counted by reason, with the first few examples of each (what a reader needs
    to fix the input: the row or record and why)."""

    def __init__(self) -> None:
        super().__init__()
        self.examples: dict[str, list[str]] = {}

    def add(self, reason: str, example: str) -> None:
        self[reason] += 1
        kept = self.examples.setdefault(reason, [])
        if len(kept) < EXAMPLES_PER_REASON:
            kept.append(example[:300])

    def merge(self, other: Rejections) -> None:
        self.update(other)
        for reason, examples in other.examples.items():
            kept = self.examples.setdefault(reason, [])
            kept += examples[: EXAMPLES_PER_REASON - len(kept)]


@dataclass
class ReadStats:
    rows: int = 0
    records: int = 0
    rejected: Rejections = field(default_factory=Rejections)
    sorted_input: bool = True
    spilled_runs: int = 0
    time_offset_s: float = 0.0
    """The offset added to every mapped row's time (``Mapping.time_offset_s``, resolved)."""


def _ts(value: Any, unit: str) -> float:
    if unit == "s":
        return float(value)
    if unit == "ms":
        return float(value) / 1000
    dt = datetime.fromisoformat(str(value))  # Python 3.11 reads a trailing Z
    return (dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp()


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _iso_or_seconds(ts: float) -> str:
    try:
        return _iso(ts)
    except (ValueError, OverflowError, OSError):  # beyond datetime's years
        return f"{ts:.0f} s after 1970"


def _event_record(value: dict[str, Any]) -> Record:
    ts = _ts(value["occurred_at"], "iso")
    key = value.get("anonymous_id") or value.get("user_id")
    return Record(ts, f"events.{value.get('channel')}.{value.get('type')}", key, value)


def _record_ts(topic: str, value: dict[str, Any]) -> float:
    for name in ("occurred_at", "at"):
        if name in value:
            return _ts(value[name], "iso")
    return BEFORE_ALL  # catalog records


def _rows_jsonl(path: Path, stats: ReadStats) -> Iterator[Record]:
    with path.open("rb") as fh:
        for line in fh:
            if not line.strip():
                continue
            stats.rows += 1
            try:
                d = orjson.loads(line)
                if "topic" in d and "value" in d:
                    yield Record(_record_ts(d["topic"], d["value"]), d["topic"], d.get("key"), d["value"])
                else:
                    yield _event_record(d)
            except (orjson.JSONDecodeError, KeyError, ValueError, TypeError) as exc:
                stats.rejected.add("unreadable_line", f"line {stats.rows}: {type(exc).__name__}: {exc}")


def _table_rows(path: Path) -> Iterator[dict[str, Any]]:
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(path).iter_batches(batch_size=10_000):
            yield from batch.to_pylist()
    else:
        with path.open(newline="") as fh:
            yield from csv.DictReader(fh)


class RowError(ValueError):
    """A row that cannot become an event; ``reason`` is machine-readable, ``detail`` says why."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail or reason


_FIRST_TS = datetime(MIN_YEAR, 1, 1, tzinfo=UTC).timestamp()
_END_TS = datetime(MAX_YEAR + 1, 1, 1, tzinfo=UTC).timestamp()
_WEEK = 7 * DAY


def offset_into_contract(first_ts: float) -> float:
    """The smallest whole number of weeks (seconds) that moves ``first_ts`` to 2000-01-01 or later.

    >>> offset_into_contract(datetime(1997, 9, 20, tzinfo=UTC).timestamp()) / 86400
    833.0
    >>> offset_into_contract(datetime(2010, 1, 1, tzinfo=UTC).timestamp())
    0.0
    """
    return math.ceil((_FIRST_TS - first_ts) / _WEEK) * _WEEK if first_ts < _FIRST_TS else 0.0


def _time_offset(path: Path, m: Mapping) -> float:
    if m.time_offset_s != "auto":
        try:
            return float(m.time_offset_s)
        except (TypeError, ValueError) as exc:
            raise ConfigError(
                f"time_offset_s: a number of seconds or 'auto', not {m.time_offset_s!r}"
            ) from exc
    first = math.inf
    for row in _table_rows(path):
        try:
            first = min(first, _ts(row[m.time], m.time_unit))
        except (KeyError, ValueError, TypeError, OverflowError):
            continue
    return offset_into_contract(first) if first < math.inf else 0.0


def _mapped_record(row: dict[str, Any], m: Mapping, n: int, offset: float = 0.0) -> Record:
    user = row.get(m.user)
    if user in (None, ""):
        raise RowError("missing_user", f"no value in the user column {m.user!r}")
    raw_type = row.get(m.type) if m.type else None
    etype = m.type_map.get(str(raw_type), None) if m.type else m.default_type
    if m.purchase_min_value is not None and m.value is not None:
        raw_value = row.get(m.value)
        try:
            if raw_value not in (None, "") and float(raw_value) >= m.purchase_min_value:
                etype = "purchase"
        except ValueError as exc:
            raise RowError("bad_value", f"{m.value}={raw_value!r} is not a number") from exc
    if etype is None:
        raise RowError("unmapped_type", f"{m.type}={raw_type!r} is not in the type map")
    try:
        ts = _ts(row[m.time], m.time_unit) + offset
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise RowError("bad_time", f"{m.time}={row.get(m.time)!r}: {exc}") from exc
    if not _FIRST_TS <= ts < _END_TS:
        raise RowError(
            "time_outside_contract",
            f"{m.time}={row.get(m.time)!r} is {_iso_or_seconds(ts)}; events must fall in "
            f"{MIN_YEAR}..{MAX_YEAR}: shift the log with time_offset_s (mapping) or --time-offset "
            "(seconds, or auto)",
        )
    item = row.get(m.item)
    channel = str(row.get(m.channel) or m.default_channel) if m.channel else m.default_channel
    value: dict[str, Any] = {
        "event_id": str(row.get(m.event_id) if m.event_id else f"row-{n}"),
        "type": etype,
        "channel": channel,
        "user_id": str(user),
        "occurred_at": _iso(ts),
    }
    if item not in (None, ""):
        value["item_id"] = str(item)
    if etype == "purchase":
        amount = float(row.get(m.amount) or 0) if m.amount else 0.0
        currency = str(row.get(m.currency) or m.default_currency) if m.currency else m.default_currency
        value["purchase"] = {"order_id": value["event_id"], "amount": amount, "currency": currency}
    elif etype == "share":
        value["share"] = {"platform": "unknown"}
    return Record(ts, f"events.{channel}.{etype}", str(user), value)


def _rows_mapped(path: Path, m: Mapping, stats: ReadStats) -> Iterator[Record]:
    stats.time_offset_s = offset = _time_offset(path, m)
    for n, row in enumerate(_table_rows(path)):
        stats.rows += 1
        try:
            yield _mapped_record(row, m, n, offset)
        except RowError as exc:
            stats.rejected.add(exc.reason, f"row {n + 1}: {exc.detail}")
        except (KeyError, ValueError, TypeError) as exc:
            stats.rejected.add("bad_row", f"row {n + 1}: {type(exc).__name__}: {exc}")


def read_unordered(path: Path, mapping: Mapping | None, stats: ReadStats) -> Iterator[Record]:
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        return _rows_jsonl(path, stats)
    if mapping is None:
        raise ConfigError(f"{path}: a CSV or Parquet log needs a column mapping (--mapping)")
    return _rows_mapped(path, mapping, stats)


def _spill(run: list[Record], directory: str) -> str:
    run.sort(key=lambda r: r.ts)
    fd, name = tempfile.mkstemp(dir=directory, suffix=".run")
    with os.fdopen(fd, "wb") as fh:
        fh.writelines(r.dumps() + b"\n" for r in run)
    return name


def _read_run(name: str) -> Iterator[Record]:
    with open(name, "rb") as fh:
        for line in fh:
            yield Record.loads(line)


def read_ordered(
    path: Path,
    mapping: Mapping | None = None,
    *,
    max_rows_in_memory: int = 200_000,
    stats: ReadStats | None = None,
) -> Iterator[Record]:
    """Every record of ``path`` in event-time order (stable for equal times)."""
    stats = stats if stats is not None else ReadStats()
    if mapping is not None and mapping.time_offset_s == "auto":  # one pass to resolve it, not one per read
        mapping = dataclasses.replace(mapping, time_offset_s=_time_offset(path, mapping))
    probe = ReadStats()
    last = float("-inf")
    for rec in read_unordered(path, mapping, probe):
        if rec.ts < last:
            stats.sorted_input = False
            break
        last = rec.ts
    if stats.sorted_input:
        for rec in read_unordered(path, mapping, stats):
            stats.records += 1
            yield rec
        return
    with tempfile.TemporaryDirectory(prefix="nba-sort-") as tmp:
        runs: list[str] = []
        buffer: list[Record] = []
        for rec in read_unordered(path, mapping, stats):
            buffer.append(rec)
            if len(buffer) >= max_rows_in_memory:
                runs.append(_spill(buffer, tmp))
                buffer = []
        buffer.sort(key=lambda r: r.ts)
        stats.spilled_runs = len(runs)
        streams: list[Iterable[Record]] = [_read_run(r) for r in runs] + [buffer]
        for rec in heapq.merge(*streams, key=lambda r: r.ts):
            stats.records += 1
            yield rec
