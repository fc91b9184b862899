"""The fault suite's input: a known stream of unique events, and the bad inputs a fault adds.

The stream is built so that its outcome does not depend on how the worker interleaves its
partitions, which a crash, a rebalance or a slow dependency changes: every user is logged in
and keys its events by its user id (no anonymous hop), and each partition is fed by one
ingress topic only (a *lane*), so each partition's events, and so its event-time clock, come in
one order whatever happens. Then the engine run offline over the accepted inputs, in any order
that keeps each lane's order, must give exactly the profiles and actions of the worker.
Identity stitching under faults is covered by the integration tests' counts
(``test_crash_recovery``, ``test_two_workers``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from lab.evaluate import partition_for

PARTITIONS = 4
LANES = ("events.app.view", "events.wechat.view", "events.weibo.click", "events.web.purchase")
"""The one ingress topic (without the deployment's prefix) that feeds each partition."""
START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Input:
    """One record the suite sends, and what the checker expects of it."""

    topic: str  # without the deployment's prefix
    key: bytes | None
    value: bytes
    user: str | None  # the user it counts for when valid
    event_id: str | None
    etype: str | None
    bad: tuple[str, ...] = ()
    """The dead-letter reasons that account for it; empty for a valid event."""


def _payload(topic: str, uid: str, n: int, t: datetime, rng: random.Random, favourite: str) -> dict[str, Any]:
    _, channel, etype = topic.split(".")
    item = favourite if rng.random() < 0.6 else f"item-{rng.randrange(24):03d}"
    p: dict[str, Any] = {
        "event_id": f"{uid}-{n}",
        "type": etype,
        "channel": channel,
        "user_id": uid,
        "item_id": item,
        "occurred_at": t.isoformat(),
    }
    if etype == "view":
        p["view"] = {"duration_s": rng.randrange(30, 1800), "progress": round(rng.random(), 2)}
    elif etype == "click":
        p["click"] = {"target": f"/items/{item}"}
    elif etype == "purchase":
        p["purchase"] = {"order_id": f"o-{uid}-{n}", "amount": rng.choice([29.0, 99.0]), "currency": "CNY"}
    return p


def known_stream(seed: int, users: int, events_per_user: int, tag: str) -> list[Input]:
    """Every user's events in event-time order, interleaved across users, with a tenth of the
    events sent a second time (a producer's retry) a little later."""
    rng = random.Random(seed)
    per_user: list[list[Input]] = []
    for u in range(users):
        uid = f"f{tag}-{u:04d}"
        topic = LANES[partition_for(uid.encode(), PARTITIONS)]
        favourite = f"item-{rng.randrange(24):03d}"
        t = START + timedelta(minutes=rng.randrange(0, 600))
        events = []
        for n in range(events_per_user):
            t += timedelta(minutes=rng.randrange(1, 30))
            p = _payload(topic, uid, n, t, rng, favourite)
            events.append(Input(topic, uid.encode(), orjson.dumps(p), uid, p["event_id"], p["type"]))
        per_user.append(events)
    out: list[Input] = []
    cursors = [0] * users
    while any(c < events_per_user for c in cursors):
        u = rng.choice([i for i, c in enumerate(cursors) if c < events_per_user])
        out.append(per_user[u][cursors[u]])
        cursors[u] += 1
        if rng.random() < 0.1:  # a retry of one of this user's earlier events
            out.append(per_user[u][rng.randrange(cursors[u])])
    return out


def _bad_base(rng: random.Random, event_id: str, uid: str) -> tuple[str, dict[str, Any]]:
    """A lane, and an event body for it that a bad input then breaks or pads."""
    topic = LANES[rng.randrange(PARTITIONS)]
    _, channel, etype = topic.split(".")
    body = {"event_id": event_id, "type": etype, "channel": channel, "user_id": uid,
            "item_id": "item-001", "occurred_at": START.isoformat()}  # fmt: skip
    return topic, body


def poison(rng: random.Random, n: int, tag: str) -> list[Input]:
    """Malformed records on the lanes: each one must end in the DLQ with one of its reasons."""
    out = []
    for i in range(n):
        uid = f"p{tag}-{i}"
        topic, base = _bad_base(rng, f"bad-{tag}-{i}", uid)
        kind = i % 6
        if kind == 0:
            value, why = b"{not json", ("invalid_json",)
        elif kind == 1:
            value, why = b"[1, 2, 3]", ("not_an_object",)
        elif kind == 2:
            value, why = orjson.dumps({**base, "occurred_at": "yesterday"}), ("schema_violation",)
        elif kind == 3:  # a lax parser would read the string as a number (finding 7)
            body = {
                **base,
                "type": "purchase",
                "purchase": {"order_id": "o", "amount": "49.0", "currency": "CNY"},
            }
            value, why = orjson.dumps(body), ("schema_violation", "topic_mismatch")
        elif kind == 4:
            value, why = orjson.dumps({**base, "channel": "fax"}), ("schema_violation", "unknown_channel")
        else:
            value, why = orjson.dumps({**base, "type": "refund"}), ("schema_violation", "topic_mismatch")
        out.append(Input(topic, uid.encode(), value, None, None, None, why))
    return out


def oversized(rng: random.Random, n: int, tag: str) -> list[Input]:
    """Records of about 900 KiB (finding 2): over the ingress limit, under the broker's 1 MB."""
    out = []
    for i in range(n):
        topic, body = _bad_base(rng, f"big-{tag}-{i}", f"b{tag}-{i}")
        body["pad"] = "x" * 900_000
        out.append(Input(topic, f"b{tag}-{i}".encode(), orjson.dumps(body), None, None, None, ("oversized",)))
    return out


def future_dated(rng: random.Random, n: int, tag: str) -> list[Input]:
    """Valid events of new users dated far ahead of the record timestamp (finding 3)."""
    out = []
    for i in range(n):
        topic = LANES[rng.randrange(PARTITIONS)]
        uid = f"z{tag}-{i}"
        t = datetime(2099, 1, 1, tzinfo=UTC) if i % 2 == 0 else datetime.now(UTC) + timedelta(days=3)
        p = _payload(topic, uid, 0, t, rng, "item-001")
        out.append(
            Input(topic, uid.encode(), orjson.dumps(p), None, p["event_id"], p["type"], ("future_dated",))
        )
    return out
