"""The engine (models.engine) through its in-memory harness: identity, forwarding, parking,
merging, due times, erase, and the user-stream wire format. Two partitions, hops delivered by
``Engine.drain`` as the user stream would (by the routing id's partition)."""

from __future__ import annotations

import zlib

import pytest

from models.engine import (
    ConsentMsg,
    Count,
    Engine,
    EngineConfig,
    EraseMsg,
    EventApplied,
    EventMsg,
    FeedbackMsg,
    Hop,
    LinkMsg,
    MemoryStore,
    MergeMsg,
    PublishAction,
    PublishLifecycle,
    Refused,
    UnknownMessage,
    from_wire,
    to_wire,
)
from models.facts import EventFacts
from schemas.dlq import Reason

DAY = 86_400.0
T0 = 1_767_225_600.0  # 2026-01-01, event time


def partition_of(raw_id: str) -> int:
    return zlib.crc32(raw_id.encode()) % 2


def facts(
    i: int, ts: float, *, user: str | None = None, anon: str | None = None, item: str = "c1"
) -> EventFacts:
    return EventFacts(
        event_id=f"e{i}", type="view", channel="web", ts=ts, user_id=user, anonymous_id=anon, item_id=item
    )


def ingest(engine: Engine, store: MemoryStore, f: EventFacts) -> list[object]:
    key = f.anonymous_id or f.user_id
    assert key is not None
    effects = engine.ingest(store, partition_of(key), key.encode(), f, f.user_id, f.anonymous_id, 0)
    return list(engine.drain(store, effects, partition_of))


def counts(effects: list[object], name: str) -> int:
    return sum(e.n for e in effects if isinstance(e, Count) and e.name == name)


def test_anonymous_browsing_then_login_folds_the_anonymous_profile_into_the_user() -> None:
    engine, store = Engine(EngineConfig()), MemoryStore()
    for i in range(3):
        ingest(engine, store, facts(i, T0 + i, anon="d1"))
    assert store.profile("a:d1") is not None and store.profile("a:d1").events == 3  # type: ignore[union-attr]
    effects = ingest(engine, store, facts(3, T0 + 10, user="alice", anon="d1"))
    user, anon = store.profile("u:alice"), store.profile("a:d1")
    assert user is not None and anon is not None
    assert user.events == 4 and user.merged_from == ["a:d1"]
    assert anon.merged_into == "u:alice"
    assert store.links == {"d1": "alice"}
    assert counts(effects, "identity_links") == 1 and counts(effects, "profiles_merged") == 1
    # a later event of the anonymous id alone is forwarded to the user and applied there
    effects = ingest(engine, store, facts(4, T0 + 20, anon="d1"))
    assert any(isinstance(e, Hop) and e.msg.canonical == "u:alice" for e in effects)
    assert store.profile("u:alice").events == 5  # type: ignore[union-attr]
    # the stored bytes are what the live object says
    assert store.profiles["u:alice"] == store.profile("u:alice").dumps()  # type: ignore[union-attr]


def test_a_second_user_cannot_take_a_linked_anonymous_id() -> None:
    engine, store = Engine(EngineConfig()), MemoryStore()
    ingest(engine, store, facts(0, T0, user="alice", anon="d1"))
    effects = ingest(engine, store, facts(1, T0 + 1, user="bob", anon="d1"))
    assert counts(effects, "identity_conflicts") == 1
    assert store.links == {"d1": "alice"}
    assert store.profile("u:bob") is not None and store.profile("u:bob").events == 1  # type: ignore[union-attr]


def test_an_event_forwarded_before_its_merge_is_parked_and_applied_by_the_merge() -> None:
    engine, store = Engine(EngineConfig()), MemoryStore()
    anon_state = {"canonical": "a:d1", "events": 0}
    forwarded = EventMsg("u:alice", facts(7, T0 + 5, anon="d1"), 0, via="a:d1")
    effects = engine.handle(store, 0, [forwarded])
    user = store.profile("u:alice")
    assert user is not None and user.events == 0 and list(user.parked) == ["a:d1"]
    assert not any(isinstance(e, EventApplied) for e in effects)
    effects = engine.handle(store, 0, [MergeMsg("u:alice", anon_state)])
    user = store.profile("u:alice")
    assert user is not None and user.events == 1 and not user.parked and user.merged_from == ["a:d1"]
    assert [e.facts.event_id for e in effects if isinstance(e, EventApplied)] == ["e7"]
    # the merge is idempotent: a re-sent merge changes nothing
    assert engine.handle(store, 0, [MergeMsg("u:alice", anon_state)]) == []


def test_the_watermark_fires_due_times_in_event_time() -> None:
    engine, store = Engine(EngineConfig()), MemoryStore()
    for i in range(6):  # activation: enough events to become active
        ingest(engine, store, facts(i, T0 + i * 60, user="alice"))
    assert store.profile("u:alice").due_at is not None  # type: ignore[union-attr]
    stage = store.profile("u:alice").stage  # type: ignore[union-attr]
    # another user on the same partition, 40 days later: alice's silence is now known once
    # `watermark_support` events say so (one is not enough: it might carry a wrong clock)
    other = next(u for u in (f"bob{i}" for i in range(50)) if partition_of(u) == partition_of("alice"))
    effects: list[object] = []
    for n in range(EngineConfig().watermark_support):
        before = len(effects)
        effects += ingest(engine, store, facts(100 + n, T0 + 40 * DAY + n, user=other))
        if n < EngineConfig().watermark_support - 1:
            assert counts(effects[before:], "due_fired") == 0
    assert counts(effects, "due_fired") >= 1
    changes = [
        e.change for e in effects if isinstance(e, PublishLifecycle) and e.change.canonical == "u:alice"
    ]
    assert changes and changes[0].from_stage == stage and changes[-1].to_stage == "dormant"


def test_erase_deletes_the_user_and_merged_anonymous_ids_and_drops_their_later_events() -> None:
    engine, store = Engine(EngineConfig(erase_salt=b"k")), MemoryStore()
    ingest(engine, store, facts(0, T0, anon="d1"))
    ingest(engine, store, facts(1, T0 + 1, user="alice", anon="d1"))
    effects = engine.drain(
        store, engine.handle(store, partition_of("alice"), [EraseMsg("u:alice", T0 + 2)]), partition_of
    )
    assert store.profile("u:alice") is None and store.profile("a:d1") is None
    assert store.links == {}
    assert counts(effects, "erased") == 2  # the user and, through a hop, the anonymous id
    assert "alice" not in "".join(store.erased)  # the suppression list holds keyed hashes only
    after = ingest(engine, store, facts(2, T0 + 3, user="alice"))
    assert counts(after, "erased_events_dropped") == 1 and store.profile("u:alice") is None
    assert not any(isinstance(e, PublishAction) for e in after)


def test_no_send_mode_counts_actions_but_publishes_nothing() -> None:
    quiet = Engine(EngineConfig(publish=False))
    loud = Engine(EngineConfig())
    out: dict[bool, list[object]] = {}
    for publish, engine in ((False, quiet), (True, loud)):
        store = MemoryStore()
        out[publish] = [e for i in range(3) for e in ingest(engine, store, facts(i, T0 + i, user="alice"))]
    assert any(isinstance(e, PublishAction) for e in out[True])
    assert not any(isinstance(e, PublishAction | PublishLifecycle) for e in out[False])
    assert counts(out[False], "actions_suppressed") == 1


@pytest.mark.parametrize(
    "msg",
    [
        EventMsg("u:1", facts(1, T0, user="1"), 123),
        EventMsg("u:1", facts(1, T0, anon="d"), 5, via="a:d"),
        LinkMsg("a:d", "u:1"),
        MergeMsg("u:1", {"canonical": "a:d"}),
        ConsentMsg("u:1", "sms", False, T0),
        FeedbackMsg("u:1", "opened", "act1", "sms", T0),
        EraseMsg("u:1", T0),
    ],
)
def test_every_message_survives_its_stored_form(msg: object) -> None:
    assert from_wire(to_wire(msg)) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize("wire", [None, {"kind": "unknown"}, {"kind": "link", "canonical": "a:d"}, [1, 2]])
def test_a_message_of_no_known_form_is_refused_by_name(wire: object) -> None:
    with pytest.raises(UnknownMessage):
        from_wire(wire)


def test_an_event_dated_past_the_allowed_skew_is_refused_and_changes_nothing() -> None:
    # issue 18, finding 3: a client with a wrong clock sends an event dated 2099
    engine, store = Engine(EngineConfig(max_future_skew_s=600)), MemoryStore()
    record_ms = int(T0 * 1000)
    future = EventFacts(event_id="f", type="view", channel="web", ts=4_070_908_800.0, user_id="alice")
    effects = engine.ingest(store, partition_of("alice"), b"alice", future, "alice", None, record_ms)
    refused = [e for e in effects if isinstance(e, Refused)]
    assert [r.reason for r in refused] == [Reason.future_dated] and refused[0].event_id == "f"
    assert store.profile("u:alice") is None and store.clock(partition_of("alice")).watermark is None
    # within the skew it applies; with no record time (offline drivers) the rule is off
    near = EventFacts(event_id="n", type="view", channel="web", ts=T0 + 500, user_id="alice")
    assert not any(
        isinstance(e, Refused) for e in engine.ingest(store, 0, b"alice", near, "alice", None, record_ms)
    )
    assert not any(
        isinstance(e, Refused) for e in engine.ingest(store, 0, b"alice", future, "alice", None, 0)
    )


def test_one_event_from_a_wrong_clock_cannot_silence_its_partition() -> None:
    # issue 18, finding 3: before, one 2099 event moved the watermark for good, woke every
    # silent user at once and made later real events late; now it takes `watermark_support`
    engine, store = Engine(EngineConfig()), MemoryStore()
    users = [u for u in (f"u{i}" for i in range(40)) if partition_of(u) == 0][:5]
    effects: list[object] = []
    for n, user in enumerate(users * 3):
        effects += ingest(engine, store, facts(n, T0 + n * 60, user=user))
    wrong = EventFacts(event_id="x", type="view", channel="web", ts=4_070_908_800.0, user_id=users[0])
    after_wrong = ingest(engine, store, wrong)
    assert counts(after_wrong, "due_fired") == 0
    assert store.clock(0).watermark is not None and store.clock(0).watermark < T0 + DAY
    later: list[object] = []
    for n, user in enumerate(users[1:]):
        later += ingest(engine, store, facts(100 + n, T0 + DAY + n * 60, user=user))
    assert counts(later, "events_applied") == len(users) - 1 and counts(later, "events_late") == 0
    assert not [e for e in later if isinstance(e, PublishLifecycle) and e.change.to_stage == "dormant"]


def test_an_event_older_than_its_users_dedupe_window_is_refused_as_late() -> None:
    engine, store = Engine(EngineConfig()), MemoryStore()
    ingest(engine, store, facts(1, T0 + 30 * DAY, user="alice"))
    effects = ingest(engine, store, facts(2, T0, user="alice"))  # 30 days older, window 7 days
    refused = [e for e in effects if isinstance(e, Refused)]
    assert counts(effects, "events_late") == 1 and [r.reason for r in refused] == [Reason.late]
    assert store.profile("u:alice").events == 1  # type: ignore[union-attr]
