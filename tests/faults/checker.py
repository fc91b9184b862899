"""The history checker: after a run, read back what the broker and Redis hold and check it
against what was sent, without asking the worker anything.

Written apart from the worker: it reads the ingress lanes, ``events.dlq``,
``nba.dlq-internal``, ``marketing.actions``, the profile table's changelog and the Redis
mirror with plain Kafka and Redis clients, and judges them with the suite's own knowledge of
each input. The one thing it borrows is the engine itself, run offline (``nba evaluate``'s
driver) over the accepted inputs in each lane's broker order, because "every profile equals
the one the engine computes over the same inputs" is the invariant.
"""

from __future__ import annotations

import asyncio
import base64
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer

from agents.records import to_action, to_cancelled
from app.demo import demo_catalog
from app.rules import setup, validation_policy
from app.settings import Settings
from lab.evaluate import EvalConfig, Evaluation
from models.engine import PublishAction, PublishCancel
from models.profile import Profile
from models.user_step import NO_MODELS
from tests.faults.stream import LANES, Input

INVARIANTS = (
    "every_input_on_the_broker",
    "every_bad_input_dead_lettered",
    "no_valid_input_dead_lettered",
    "no_internal_dead_letters",
    "every_valid_input_applied_once",
    "profiles_equal_offline_engine",
    "redis_mirror_equals_profiles",
    "action_copies_identical",
    "one_action_per_trigger",
    "per_user_action_order",
    "actions_equal_offline_engine",
    "worker_never_exited_on_its_own",
)


@dataclass
class Rec:
    topic: str  # without the prefix
    partition: int
    offset: int
    key: bytes | None
    value: bytes


@dataclass
class Verdict:
    violations: list[tuple[str, str]] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def fail(self, invariant: str, detail: str) -> None:
        assert invariant in INVARIANTS, invariant
        self.violations.append((invariant, detail[:3000]))


async def read_topic(bootstrap: str, topic: str, prefix: str = "") -> list[Rec]:
    """Every record of ``topic`` from the beginning, until a few quiet polls."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_bytes=4 * 2**20,
        max_partition_fetch_bytes=2 * 2**20,
    )
    await consumer.start()
    out: list[Rec] = []
    try:
        quiet = 0
        while quiet < 4:
            batch = await consumer.getmany(timeout_ms=500)
            quiet = 0 if batch else quiet + 1
            for tp, records in batch.items():
                name = tp.topic[len(prefix) :] if prefix and tp.topic.startswith(prefix) else tp.topic
                out += [Rec(name, tp.partition, r.offset, r.key, r.value or b"") for r in records]
    finally:
        await consumer.stop()
    return sorted(out, key=lambda r: (r.topic, r.partition, r.offset))


def _compacted(records: list[Rec]) -> dict[str, bytes | None]:
    latest: dict[str, bytes | None] = {}
    for r in records:  # sorted by partition and offset: a key lives on one partition
        assert r.key is not None
        latest[orjson.loads(r.key)] = r.value or None
    return latest


def offline(settings: Settings, lanes: list[Rec], skip: set[tuple[str, int, int]]) -> Evaluation:
    """The engine over the catalog and every lane record the worker did not dead-letter, in
    broker order per lane (lanes are independent: see ``tests.faults.stream``)."""
    ev = Evaluation(
        EvalConfig(partitions=settings.kafka.partitions, decisions=True, frozen=NO_MODELS),
        validation_policy(settings),
        None,
        setup(settings),
    )
    for item in demo_catalog():
        ev.feed("catalog.items", item.item_id, orjson.loads(item.model_dump_json()))
    for r in lanes:
        if (r.topic, r.partition, r.offset) in skip:
            continue
        ev.feed(r.topic, r.key.decode() if r.key else None, orjson.loads(r.value))
    return ev


def _action_json(ev: Evaluation) -> list[dict[str, Any]]:
    out = []
    for e in ev.published:
        if isinstance(e, PublishAction):
            out.append(orjson.loads(to_action(e.canonical, e.decision, e.segment, e.stage).model_dump_json()))
        elif isinstance(e, PublishCancel):
            out.append(orjson.loads(to_cancelled(e.canonical, e.send, e.at, e.why).model_dump_json()))
    return out


def _canon(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS)


async def check(
    *,
    settings: Settings,
    bootstrap: str,
    prefix: str,
    app_id: str,
    redis: aioredis.Redis,
    redis_prefix: str,
    inputs: list[Input],
    exits: list[str],
    forget: int | None = None,
) -> Verdict:
    """Judge a run. ``forget`` (the checker's own test) drops the accepted lane record at that
    index from the offline run, as if the worker had applied an event that was never sent."""
    v = Verdict()
    lanes = [r for t in LANES for r in await read_topic(bootstrap, prefix + t, prefix)]
    by_value: dict[bytes, Input] = {inp.value: inp for inp in inputs}
    on_broker = Counter(r.value for r in lanes)
    missing = [inp for inp in by_value.values() if inp.value not in on_broker]
    if missing:
        v.fail("every_input_on_the_broker", f"{len(missing)} inputs never reached the broker")
    strangers = [r for r in lanes if r.value not in by_value]
    if strangers:
        v.fail("every_input_on_the_broker", f"{len(strangers)} records on the lanes the suite did not send")

    dead: dict[tuple[str, int, int], set[str]] = defaultdict(set)
    for r in await read_topic(bootstrap, prefix + "events.dlq"):
        d = orjson.loads(r.value)
        topic = d["topic"][len(prefix) :] if d["topic"].startswith(prefix) else d["topic"]
        dead[(topic, d["partition"], d["offset"])].add(d["reason"])
        if d.get("truncated"):
            v.counts["dead_letters_truncated"] += 1
            if d.get("replayable") or len(base64.b64decode(d["value_b64"])) >= (d.get("original_bytes") or 0):
                v.fail(
                    "every_bad_input_dead_lettered",
                    f"a truncated dead letter is not marked as such: {d['topic']}",
                )
    v.counts["dead_letters"] = sum(len(x) for x in dead.values())
    internal = await read_topic(bootstrap, prefix + "nba.dlq-internal")
    if internal:
        v.fail("no_internal_dead_letters", f"{len(internal)}: {internal[0].value[:300]!r}")

    for r in lanes:
        inp = by_value.get(r.value)
        if inp is None:
            continue
        reasons = dead.get((r.topic, r.partition, r.offset), set())
        if inp.bad:
            v.counts["bad_inputs"] += 1
            if not reasons & set(inp.bad):
                v.fail(
                    "every_bad_input_dead_lettered",
                    f"{r.topic}[{r.partition}]@{r.offset} expected one of {inp.bad}, "
                    f"dead letters: {reasons or 'none'}",
                )
        elif reasons:
            v.fail("no_valid_input_dead_lettered", f"{inp.event_id} dead-lettered as {reasons}")

    # every valid event applied exactly once: judged from the suite's own inputs alone
    expected: dict[str, Counter[str]] = defaultdict(Counter)
    ids: dict[str, set[str]] = defaultdict(set)
    for inp in by_value.values():
        valid = not inp.bad and inp.user is not None and inp.event_id is not None and inp.etype is not None
        if valid and inp.event_id not in ids[inp.user]:
            ids[inp.user].add(inp.event_id)
            expected[inp.user][inp.etype] += 1
    changelog = _compacted(await read_topic(bootstrap, f"{app_id}-profiles-changelog"))
    stored = {k: Profile.loads(b).to_dict() for k, b in changelog.items() if b is not None}
    for user, types in expected.items():
        p = stored.get(f"u:{user}")
        if p is None:
            v.fail("every_valid_input_applied_once", f"{user}: no profile")
            continue
        seen = {k.split("/", 1)[1] for k in p["seen"]}
        if p["by_type"] != dict(types) or not ids[user] <= seen:
            v.fail(
                "every_valid_input_applied_once",
                f"{user}: by_type {p['by_type']} expected {dict(types)}; "
                f"not seen {sorted(ids[user] - seen)[:5]}",
            )
    v.counts["users"] = len(expected)
    v.counts["events_expected"] = sum(sum(t.values()) for t in expected.values())

    skip = {key for key, reasons in dead.items() if reasons}
    if forget is not None:
        kept = [r for r in lanes if (r.topic, r.partition, r.offset) not in skip]
        skip.add((kept[forget].topic, kept[forget].partition, kept[forget].offset))
    ev = await asyncio.to_thread(offline, settings, lanes, skip)
    want = {c: Profile.loads(p.dumps()).to_dict() for c, p in ev.store.live.items()}
    differ = sorted(c for c in set(want) | set(stored) if want.get(c) != stored.get(c))
    if differ:
        fields: Counter[str] = Counter()
        for c in differ:
            a, b = want.get(c) or {}, stored.get(c) or {}
            fields.update(f for f in set(a) | set(b) if a.get(f) != b.get(f))
        c = differ[0]
        a, b = want.get(c) or {}, stored.get(c) or {}
        first = {
            f: (str(b.get(f))[:200], str(a.get(f))[:200])
            for f in sorted(set(a) | set(b))
            if a.get(f) != b.get(f)
        }
        v.fail(
            "profiles_equal_offline_engine",
            f"{len(differ)} differ in fields {dict(fields)}; {c} (worker, offline): {first}",
        )
    v.counts["profiles"] = len(stored)

    mirror_bad = []
    for c, p in want.items():
        if p.get("merged_into") or p.get("erased"):
            continue
        raw = await redis.get(f"{redis_prefix}profile:{c}")
        got = orjson.loads(raw) if raw is not None else None
        if got is None or got.get("events") != p["events"]:
            mirror_bad.append(f"{c}: {got and got.get('events')} of {p['events']} events")
    if mirror_bad:
        v.fail(
            "redis_mirror_equals_profiles",
            f"{len(mirror_bad)} profiles absent or stale: {mirror_bad[:3]}",
        )

    actions = await read_topic(bootstrap, prefix + "marketing.actions")
    copies: dict[tuple[str, str], set[bytes]] = defaultdict(set)
    first: dict[tuple[str, str], Rec] = {}
    for r in actions:
        a = orjson.loads(r.value)
        key = (a.get("event", "action"), a["action_id"])
        copies[key].add(_canon(a))
        first.setdefault(key, r)
    v.counts["action_records"] = len(actions)
    v.counts["actions_distinct"] = len(copies)
    for key, bodies in copies.items():
        if len(bodies) > 1:
            v.fail("action_copies_identical", f"{key}: {len(bodies)} different bodies")
    triggers: Counter[tuple[str, str]] = Counter()
    order: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
    lane_pos = {}
    for r in lanes:
        inp = by_value.get(r.value)
        if inp is not None and inp.event_id is not None and not inp.bad:
            lane_pos.setdefault(inp.event_id, r.offset)
    for key, r in first.items():
        a = orjson.loads(r.value)
        if key[0] != "action" or a.get("trigger_event_id") is None:
            continue
        triggers[(a["user_id"], a["trigger_event_id"])] += 1
        order[a["user_id"]].append((r.partition, r.offset, a["trigger_event_id"]))
    for (user, trigger), n in triggers.items():
        if n > 1:
            v.fail("one_action_per_trigger", f"{user}: {n} actions for {trigger}")
    for user, seq in order.items():
        positions = [lane_pos.get(t, -1) for _, _, t in sorted(seq)]
        if positions != sorted(positions):
            v.fail("per_user_action_order", f"{user}: triggers in topic order at lane offsets {positions}")
    want_actions = {_canon(a) for a in _action_json(ev)}
    got_actions = {b for bodies in copies.values() for b in bodies}
    if want_actions != got_actions:
        v.fail(
            "actions_equal_offline_engine",
            f"{len(want_actions - got_actions)} missing, {len(got_actions - want_actions)} extra; "
            f"e.g. missing {sorted(want_actions - got_actions)[:1]!r} "
            f"extra {sorted(got_actions - want_actions)[:1]!r}",
        )
    for e in exits:
        v.fail("worker_never_exited_on_its_own", e)
    return v
