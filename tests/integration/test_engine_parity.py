"""One engine, two drivers: a simulated log (anonymous browsing, logins and merges, shared
devices, late and duplicate events, consent changes, sender feedback and erasures) through the
real worker on the real broker and through ``nba evaluate`` gives the same stored profiles, the
same actions and the same decision records, field by field.

To make the comparison exact, both drivers run frozen: the worker's learner never publishes a
snapshot (so it scores with no model, as ``EvalConfig(frozen=NO_MODELS)`` does), the control
share is 0 and the policy is the foundation rule. The log is sent in the order ``nba evaluate``
reads it, and paced: each record is sent once the worker has applied the previous one and every
user-stream message it caused (the counts ``nba evaluate`` predicts, read from ``/metrics``), so
merges and forwarded events meet the same state in both drivers.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from agents.records import to_action, to_cancelled, to_lifecycle, to_record
from app.rules import setup, validation_policy
from app.settings import Settings
from lab.evaluate import EvalConfig, Evaluation
from lab.logs import Record, read_ordered
from lab.sim.output import write_jsonl
from lab.sim.world import World, WorldConfig
from models.engine import LogDecision, PublishAction, PublishCancel, PublishLifecycle
from models.profile import Profile
from models.user_step import NO_MODELS
from tests.integration.conftest import Deployment, produce

FROZEN = {
    "NBA_SEGMENTS__SNAPSHOT_EVERY": "1000000000",  # the learner learns, but never publishes
    "NBA_SEGMENTS__SNAPSHOT_INTERVAL_S": "1000000000",
}


def _world(tmp: Path) -> list[Record]:
    path = tmp / "world.jsonl"
    cfg = WorldConfig(days=14, users=120, seed=11, erase_share=0.03, shared_device_share=0.05)
    write_jsonl(World(cfg), path)
    return list(read_ordered(path))


def _feedback(actions: list[dict[str, Any]], every: int = 3) -> list[Record]:
    """Sender feedback on every ``every``-th action sent: delivered a minute after its send
    time, and opened an hour after."""
    sent = [a for a in actions if a.get("event") != "action_cancelled"]
    out = []
    for a in sent[::every]:
        at_send = datetime.fromisoformat(a["send_at"])
        for kind, after in (("delivered", timedelta(minutes=1)), ("opened", timedelta(hours=1))):
            at = at_send + after
            value = {
                "action_id": a["action_id"],
                "user_id": a["user_id"],
                "user_kind": a["user_kind"],
                "channel": a["channel"],
                "kind": kind,
                "at": at.isoformat(),
            }
            out.append(Record(at.timestamp(), "marketing.feedback", a["user_id"], value))
    return out


def _published(ev: Evaluation) -> dict[str, list[dict[str, Any]]]:
    """What the worker would have sent, as the JSON it sends."""
    out: dict[str, list[dict[str, Any]]] = {"actions": [], "decisions": [], "lifecycle": []}
    for e in ev.published:
        if isinstance(e, PublishAction):
            rec: Any = to_action(e.canonical, e.decision, e.segment, e.stage)
            out["actions"].append(orjson.loads(rec.model_dump_json()))
        elif isinstance(e, PublishCancel):
            rec = to_cancelled(e.canonical, e.send, e.at, e.why)
            out["actions"].append(orjson.loads(rec.model_dump_json()))
        elif isinstance(e, LogDecision):
            rec = to_record(e.canonical, e.verdict, e.segment, e.stage)
            out["decisions"].append(orjson.loads(rec.model_dump_json()))
        elif isinstance(e, PublishLifecycle):
            rec = to_lifecycle(e.change, e.segment)
            out["lifecycle"].append(orjson.loads(rec.model_dump_json(by_alias=True)))
    return out


def _evaluate(settings: Settings, records: list[Record]) -> tuple[Evaluation, list[tuple[Record, int, int]]]:
    """Feed ``records`` to ``nba evaluate``'s driver; each record it accepted, with the ingress
    events and user-stream messages the worker will have applied once it has applied it."""
    ev = Evaluation(
        EvalConfig(partitions=settings.kafka.partitions, decisions=True, frozen=NO_MODELS),
        validation_policy(settings),
        None,
        setup(settings),
    )
    paced = []
    consumed = 0
    for rec in records:
        rejected = ev.rejections.total()
        ev.feed(rec.topic, rec.key, rec.value)
        if ev.rejections.total() > rejected:
            continue  # the worker would dead-letter it: not part of the comparison
        if rec.topic != "catalog.items":
            consumed += rec.topic.startswith("events.")
            paced.append((rec, consumed, sum(ev.user_stream.values())))
    return ev, paced


def _metric(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


async def _changelog(dep: Deployment, table: str) -> dict[str, bytes | None]:
    """The table's changelog, compacted by hand: the newest value of each key."""
    consumer = AIOKafkaConsumer(
        f"{dep.app_id}-{table}-changelog",
        bootstrap_servers=dep.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    latest: dict[str, bytes | None] = {}
    try:
        quiet = 0
        while quiet < 4:
            batch = await consumer.getmany(timeout_ms=500)
            quiet = 0 if batch else quiet + 1
            for recs in batch.values():
                for r in recs:
                    latest[orjson.loads(r.key)] = r.value  # Faust's str keys are JSON
    finally:
        await consumer.stop()
    return latest


async def _topic(dep: Deployment, name: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        dep.topic(name),
        bootstrap_servers=dep.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    out = []
    try:
        quiet = 0
        while quiet < 4:
            batch = await consumer.getmany(timeout_ms=500)
            quiet = 0 if batch else quiet + 1
            out += [orjson.loads(r.value) for recs in batch.values() for r in recs if r.value]
    finally:
        await consumer.stop()
    return out


def _key(record: dict[str, Any]) -> str:
    return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


async def test_worker_and_evaluate_give_the_same_profiles_actions_and_decisions(
    deployment: Deployment, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = deployment
    dep.extra.update(FROZEN)
    for k, v in dep.env().items():
        if k.startswith("NBA_"):
            monkeypatch.setenv(k, v)
    settings = Settings()
    assert settings.segments.snapshot_every == 1_000_000_000  # the worker reads the same env
    world = _world(tmp_path)
    # a first pass finds actions to answer; their feedback comes after them in event time, so
    # it changes nothing before it and the full log's earlier actions are the same
    first, _ = _evaluate(settings, world)
    feedback = _feedback(_published(first)["actions"])
    assert len(feedback) >= 20, "the world gives enough actions to answer"
    log = sorted(world + feedback, key=lambda r: r.ts)
    catalog = [r for r in log if r.topic == "catalog.items"]
    ev, paced = _evaluate(settings, [*catalog, *(r for r in log if r.topic != "catalog.items")])
    kinds = Counter(r.topic.split(".")[0] + "." + r.topic.split(".")[1] for r, _, _ in paced)
    assert kinds["users.erase"] >= 2 and kinds["users.consent"] >= 20 and kinds["marketing.feedback"] >= 20
    assert ev.user_stream["merge"] >= 10 and ev.user_stream["event"] >= 10, ev.user_stream

    dep.create_topics()
    await produce(
        dep.bootstrap,
        [(dep.topic(r.topic), r.key.encode() if r.key else None, orjson.dumps(r.value)) for r in catalog],
    )
    worker = dep.worker()
    worker.start()
    await worker.ready()

    producer = AIOKafkaProducer(bootstrap_servers=dep.bootstrap, acks="all")
    await producer.start()
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            for rec, consumed, hops in paced:
                key = rec.key.encode() if rec.key else None
                await producer.send_and_wait(dep.topic(rec.topic), orjson.dumps(rec.value), key=key)
                deadline = time.monotonic() + 30
                while True:
                    text = (await client.get(worker.url + "/metrics")).text
                    got = (
                        _metric(text, "nba_events_consumed_total"),
                        _metric(text, "nba_user_stream_messages_total"),
                    )
                    if got[0] >= consumed and got[1] >= hops:
                        break
                    assert worker.alive(), worker.log.read_text()[-3000:]
                    assert time.monotonic() < deadline, (
                        f"worker stuck at {got}, expected ({consumed}, {hops}) after {rec}"
                    )
    finally:
        await producer.stop()

    expected = _published(ev)
    got = {
        "actions": await _topic(dep, "marketing.actions"),
        "decisions": await _topic(dep, "marketing.decisions"),
        "lifecycle": await _topic(dep, "users.lifecycle"),
    }
    for name in expected:
        missing = sorted(set(map(_key, expected[name])) - set(map(_key, got[name])))
        extra = sorted(set(map(_key, got[name])) - set(map(_key, expected[name])))
        assert sorted(map(_key, got[name])) == sorted(map(_key, expected[name])), (
            name,
            missing[:2],
            extra[:2],
        )
    assert len(expected["actions"]) >= 20 and len(expected["decisions"]) >= 20

    stored = {
        k: Profile.loads(v).to_dict() for k, v in (await _changelog(dep, "profiles")).items() if v is not None
    }
    offline = {c: Profile.loads(p.dumps()).to_dict() for c, p in ev.store.live.items()}
    assert sorted(stored) == sorted(offline)
    differing = [c for c in offline if stored[c] != offline[c]]
    assert not differing, {
        c: {f: (stored[c][f], offline[c][f]) for f in offline[c] if stored[c][f] != offline[c][f]}
        for c in differing[:3]
    }
    assert len(offline) >= 100
