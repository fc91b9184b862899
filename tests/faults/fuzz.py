"""Bad input at scale: hypothesis-generated messages over the ingress contract and around it
(wrong types, bounds, sizes, encodings, keys, topics) through the real worker.

    python -m tests.faults.fuzz --n 100000        (``make faults``; the README's test command runs 3,000)

Every case is built knowing what it is: *valid* (the contract must accept it, the worker must
apply it once, or dead-letter it as ``late``/``future_dated`` when its event time says so) or
*invalid* with the dead-letter reasons that fit what was broken. The corpus is deterministic
(``derandomize``); the checks read the broker and the profile changelog back, as the history
checker does.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import orjson
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from app.settings import IngressSettings
from models.profile import Profile
from schemas.validate import Accepted, ValidationPolicy, validate
from schemas.vocabulary import CHANNELS as _CHANNELS
from tests.faults.checker import _compacted, read_topic
from tests.faults.harness import Services
from tests.integration.conftest import Deployment, delete_topics, produce

TYPES = ("view", "click", "share", "purchase")
CHANNELS = tuple(_CHANNELS)
START = datetime(2026, 1, 5, tzinfo=UTC)
POLICY = ValidationPolicy(channels=frozenset(CHANNELS), fx_rates=IngressSettings().fx_rates)
"""The worker's default ingress policy (its channels, size limit and currencies)."""
USERS = 2000


@dataclass(frozen=True, slots=True)
class Case:
    topic: str  # without the prefix
    key: bytes | None
    value: bytes
    valid: bool
    reasons: frozenset[str] = frozenset()  # for an invalid case: the reasons that fit
    user: str | None = None
    etype: str | None = None


_junk = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.text(max_size=30),
    st.just([]),
    st.just({}),
)


@st.composite
def _valid_payload(draw: Any) -> tuple[str, dict[str, Any]]:
    etype, channel = draw(st.sampled_from(TYPES)), draw(st.sampled_from(CHANNELS))
    zone = timezone(timedelta(hours=draw(st.sampled_from([0, 8, -5]))))
    t = (START + timedelta(seconds=draw(st.integers(0, 3 * 86_400)))).astimezone(zone)
    p: dict[str, Any] = {
        "event_id": "fz-0",  # made unique by ``corpus``
        "type": etype,
        "channel": channel,
        "user_id": f"fz{draw(st.integers(0, USERS - 1))}",
        "occurred_at": t.isoformat(),
    }
    if etype != "click" or draw(st.booleans()):  # a click may name no item
        p["item_id"] = draw(st.from_regex(r"\A[A-Za-z0-9_.:@\-]{1,40}\Z"))
    if etype == "view":
        p["view"] = {
            "duration_s": draw(st.integers(0, 86_400) | st.floats(0, 86_400)),
            "progress": draw(st.floats(0, 1)),
        }
    elif etype == "purchase":
        p["purchase"] = {
            "order_id": f"o-{draw(st.integers(0, 10**9))}",
            "amount": draw(st.floats(0, 1_000_000)),
            "currency": draw(st.sampled_from(["CNY", "USD", "EUR"])),
        }
    elif etype == "share":
        p["share"] = {"platform": draw(st.sampled_from(["wechat_moments", "weibo", "qq"]))}
    if draw(st.booleans()):
        p["properties"] = draw(st.dictionaries(st.text(max_size=8), _junk, max_size=4))
    if draw(st.booleans()):
        p["context"] = {
            "locale": draw(st.sampled_from(["zh-CN", "en-US"])),
            "device": draw(st.text(max_size=20)),
        }
    return f"events.{channel}.{etype}", p


# how each invalid case breaks a valid one, and the reasons that fit
_BREAKS: dict[str, frozenset[str]] = {
    "wrong_type": frozenset({"schema_violation"}),
    "out_of_bounds": frozenset({"schema_violation"}),
    "too_long": frozenset({"schema_violation"}),
    "oversized": frozenset({"oversized"}),
    "not_utf8": frozenset({"invalid_json"}),
    "utf16": frozenset({"invalid_json"}),
    "not_json": frozenset({"invalid_json", "schema_violation"}),  # "{}" parses
    "not_object": frozenset({"not_an_object"}),
    "wrong_key": frozenset({"key_mismatch"}),
    "wrong_topic": frozenset({"topic_mismatch"}),
    "unknown_channel": frozenset({"unknown_channel", "topic_mismatch"}),
    "missing_field": frozenset({"schema_violation"}),
    "unknown_currency": frozenset({"unknown_currency", "schema_violation"}),
}


@st.composite
def case(draw: Any) -> Case:
    topic, p = draw(_valid_payload())
    user, key = p["user_id"], p["user_id"].encode()
    how = draw(st.sampled_from(["valid", *sorted(_BREAKS)]))
    if how == "valid" or draw(st.booleans()):  # about half valid
        return Case(topic, key, orjson.dumps(p), True, user=user, etype=p["type"])
    value: bytes | None = None
    if how == "wrong_type":
        field = draw(st.sampled_from(["amount", "progress", "duration", "event_id", "occurred_at"]))
        if field == "amount":
            topic, p["type"] = topic.rsplit(".", 1)[0] + ".purchase", "purchase"
            p["purchase"] = {
                "order_id": "o",
                "amount": draw(st.sampled_from(["49.0", True, None, [1]])),
                "currency": "CNY",
            }
        elif field in ("progress", "duration"):
            topic, p["type"] = topic.rsplit(".", 1)[0] + ".view", "view"
            name = "progress" if field == "progress" else "duration_s"
            p["view"] = {name: draw(st.sampled_from(["0.5", True, False, [0.5], {"v": 1}]))}
        elif field == "event_id":
            p["event_id"] = draw(st.integers() | st.booleans() | st.just(None) | st.just([]))
        else:
            p["occurred_at"] = draw(st.integers(0, 2**40) | st.booleans() | st.just(None))
    elif how == "out_of_bounds":
        which = draw(st.integers(0, 3))
        if which == 0:
            topic, p["type"] = topic.rsplit(".", 1)[0] + ".view", "view"
            p["view"] = {"progress": draw(st.floats(1.0001, 1e9) | st.floats(-1e9, -0.0001))}
        elif which == 1:
            topic, p["type"] = topic.rsplit(".", 1)[0] + ".view", "view"
            p["view"] = {"duration_s": draw(st.integers(86_401, 2**60) | st.integers(-(2**60), -1))}
        elif which == 2:
            year = draw(st.integers(1, 1999) | st.integers(2101, 9999))
            p["occurred_at"] = f"{year:04d}-06-01T00:00:00Z"
        else:
            topic, p["type"] = topic.rsplit(".", 1)[0] + ".purchase", "purchase"
            p["purchase"] = {
                "order_id": "o",
                "amount": draw(st.floats(1_000_001, 1e300) | st.floats(-1e9, -0.01)),
                "currency": "CNY",
            }
    elif how == "too_long":
        p[draw(st.sampled_from(["event_id", "item_id", "session_id"]))] = "x" * draw(st.integers(129, 4000))
    elif how == "oversized":
        p["properties"] = {"pad": "y" * draw(st.integers(64 * 1024, 200 * 1024))}
    elif how == "not_utf8":
        raw = orjson.dumps(p)
        at = draw(st.integers(1, len(raw) - 2))
        value = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80"])) + raw[at:]
    elif how == "utf16":
        value = orjson.dumps(p).decode().encode(draw(st.sampled_from(["utf-16", "utf-32"])))
    elif how == "not_json":
        value = draw(
            st.binary(min_size=1, max_size=200).filter(lambda b: b.strip()[:1] not in (b"{", b"[", b'"'))
        )
        value = b"{" + value  # never valid JSON: an object that does not close
    elif how == "not_object":
        value = orjson.dumps(draw(st.lists(_junk, max_size=3) | st.integers() | st.text(max_size=10)))
    elif how == "wrong_key":  # an anonymous event must be keyed by its anonymous id
        p["anonymous_id"] = f"dev-{user}"
        key = draw(st.sampled_from([user.encode(), b"someone-else", b"\xff\xfe", b""]))
    elif how == "wrong_topic":
        other = draw(st.sampled_from([t for t in TYPES if t != p["type"]]))
        topic = topic.rsplit(".", 1)[0] + "." + other
    elif how == "unknown_channel":
        p["channel"] = draw(st.sampled_from(["fax", "telegram", "pager"]))
    elif how == "missing_field":
        del p[draw(st.sampled_from(["event_id", "type", "occurred_at", "channel"]))]
    elif how == "unknown_currency":
        topic, p["type"] = topic.rsplit(".", 1)[0] + ".purchase", "purchase"
        p["purchase"] = {
            "order_id": "o",
            "amount": 10.0,
            "currency": draw(st.sampled_from(["XYZ", "ABC", "QQQ"])),
        }
    return Case(topic, key, value if value is not None else orjson.dumps(p), False, _BREAKS[how])


def corpus(n: int) -> list[Case]:
    """``n`` cases, the same ones every time (hypothesis derandomized, no example database)."""
    out: list[Case] = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case())
    def collect(c: Case) -> None:
        out.append(c)

    collect()
    for i, c in enumerate(out):  # every valid case its own event id (none is a duplicate)
        if c.valid:
            p = orjson.loads(c.value)
            p["event_id"] = f"fz-{i}"
            out[i] = Case(c.topic, c.key, orjson.dumps(p), True, c.reasons, c.user, c.etype)
    return out


def contract_disagreements(cases: list[Case]) -> list[str]:
    """Cases the ingress contract judges otherwise than they were built."""
    bad = []
    for c in cases:
        _, channel, etype = c.topic.split(".")
        got = validate(
            c.value, topic_channel=channel, topic_type=etype, policy=POLICY, key=c.key, check_key=True
        )
        if c.valid != isinstance(got, Accepted) or (
            not c.valid and getattr(got, "reason", None) not in c.reasons
        ):
            bad.append(f"{c.topic} valid={c.valid} {c.reasons or ''} -> {got!r}"[:300])
    return bad


@dataclass
class FuzzResult:
    cases: int
    valid: int
    crashes: list[str]
    violations: list[str]
    reasons: Counter[str]
    seconds: float


async def run(services: Services, home: Path, n: int) -> FuzzResult:
    started = time.monotonic()
    cases = corpus(n)
    violations = [f"contract: {d}" for d in contract_disagreements(cases)[:20]]
    dep = Deployment(home / "fuzz", partitions=4, bootstrap=services.bootstrap)
    dep.tmp.mkdir(parents=True, exist_ok=True)
    dep.extra.update(NBA_REDIS__URL=services.redis_url)
    crashes: list[str] = []
    try:
        dep.create_topics()
        worker = dep.worker("w1")
        worker.start()
        await worker.ready(timeout=180)
        await produce(dep.bootstrap, [(dep.prefix + c.topic, c.key, c.value) for c in cases])
        topics = sorted({c.topic for c in cases})
        dead: dict[tuple[str, int, int], str] = {}
        deadline = time.monotonic() + 600
        expected_dead = sum(not c.valid for c in cases)
        while time.monotonic() < deadline:  # until every invalid case is dead-lettered, and quiet
            if not worker.alive():
                crashes.append(f"worker exited: {worker.log.read_text()[-2000:]}")
                break
            records = await read_topic(dep.bootstrap, dep.topic("events.dlq"))
            now = {}
            for r in records:
                d = orjson.loads(r.value)
                now[(d["topic"][len(dep.prefix) :], d["partition"], d["offset"])] = d["reason"]
            if len(now) >= expected_dead and len(now) == len(dead):
                break
            dead = now
            await asyncio.sleep(3)
        dead = now
        lanes = [r for t in topics for r in await read_topic(dep.bootstrap, dep.prefix + t, dep.prefix)]
        by_value: dict[tuple[str, bytes], Case] = {(c.topic, c.value): c for c in cases}
        applied: dict[str, Counter[str]] = defaultdict(Counter)
        reasons: Counter[str] = Counter()
        for r in lanes:
            c = by_value[(r.topic, r.value)]
            reason = dead.get((r.topic, r.partition, r.offset))
            reasons[reason or "applied"] += 1
            if c.valid:
                if reason is None:
                    assert c.user is not None and c.etype is not None
                    applied[c.user][c.etype] += 1
                elif reason not in ("late", "future_dated"):
                    violations.append(f"valid case dead-lettered as {reason}: {r.value[:200]!r}")
            elif reason is None:
                violations.append(f"invalid case {sorted(c.reasons)} not dead-lettered: {r.value[:200]!r}")
            elif reason not in c.reasons:
                violations.append(
                    f"invalid case {sorted(c.reasons)} dead-lettered as {reason}: {r.value[:120]!r}"
                )
        changelog = _compacted(await read_topic(dep.bootstrap, f"{dep.app_id}-profiles-changelog"))
        for user, types in applied.items():
            raw = changelog.get(f"u:{user}")
            got = Profile.loads(raw).to_dict()["by_type"] if raw else {}
            if got != dict(types):
                violations.append(f"{user}: applied {got}, expected {dict(types)}")
        if not worker.alive() and not crashes:
            crashes.append("worker exited")
        if await read_topic(dep.bootstrap, dep.topic("nba.dlq-internal")):
            violations.append("internal dead letters")
    finally:
        for w in dep.workers:
            w.kill()
        await delete_topics(dep.bootstrap, dep.prefix, dep.app_id)
    return FuzzResult(
        len(cases), sum(c.valid for c in cases), crashes, violations, reasons, time.monotonic() - started
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--out", type=Path, default=Path("bench/results/fuzz.json"))
    args = ap.parse_args(argv)
    from tests.faults.suite import quiet_clients

    quiet_clients()
    home = Path(tempfile.mkdtemp(prefix="nba-fuzz-"))
    services = Services(home)
    services.start()
    try:
        r = asyncio.run(run(services, home, args.n))
    finally:
        services.stop()
    print(f"{r.cases} cases ({r.valid} valid) in {r.seconds:.0f}s: {len(r.crashes)} crashes, "
          f"{len(r.violations)} violations; outcomes {dict(r.reasons)}")  # fmt: skip
    for v in (r.crashes + r.violations)[:30]:
        print("  ", v)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {"cases": r.cases, "valid": r.valid, "crashes": r.crashes, "violations": r.violations,
              "outcomes": dict(r.reasons), "seconds": round(r.seconds, 1)}  # fmt: skip
    args.out.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return 1 if r.crashes or r.violations else 0


if __name__ == "__main__":
    sys.exit(main())
