"""Dead-lettering: every record fits the producer limit, errors on internal topics go to their
own dead-letter topic, and a failed publish is retried (issue 18, findings 2 and 4)."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import Any

import pytest

from agents import dlq
from schemas.dlq import MAX_ORIGINAL_BYTES, DeadLetter, Reason
from schemas.validate import Rejected

PRODUCER_LIMIT = 1_000_000  # aiokafka's and Kafka's default max request size


@pytest.mark.parametrize(
    "size", [10, MAX_ORIGINAL_BYTES - 1, MAX_ORIGINAL_BYTES, 900 * 1024, 5 * 1024 * 1024]
)
def test_every_dead_letter_fits_the_producer_limit(size: int) -> None:
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    rec = dlq.record(
        topic="events.app.view",
        partition=1,
        offset=7,
        key=b"k",
        value=value,
        reason=Reason.oversized,
        detail="d",
    )
    assert len(rec.model_dump_json().encode()) < PRODUCER_LIMIT
    assert rec.original_bytes == size and rec.original_sha256 == hashlib.sha256(value).hexdigest()
    held, room = base64.b64decode(rec.value_b64), MAX_ORIGINAL_BYTES - 1  # the 1-byte key shares it
    assert rec.truncated is (size > room) and rec.replayable is not rec.truncated
    assert held == value[:room]
    assert DeadLetter.model_validate_json(rec.model_dump_json()) == rec


def test_a_huge_key_is_cut_too_and_the_record_still_fits() -> None:
    key, value = b"k" * (800 * 1024), b"v" * (500 * 1024)
    rec = dlq.record(
        topic="t", partition=0, offset=1, key=key, value=value, reason=Reason.oversized, detail="d"
    )
    assert len(rec.model_dump_json().encode()) < PRODUCER_LIMIT and rec.truncated and not rec.replayable
    assert base64.b64decode(rec.key_b64 or "") == key[: dlq.MAX_KEY_BYTES]


@dataclass
class _Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None


@dataclass
class _Event:
    message: _Message
    value: bytes | None


class _Stream:
    def __init__(self, values: list[bytes]) -> None:
        self.values = values

    async def events(self) -> Any:
        for n, v in enumerate(self.values):
            yield _Event(_Message("nba.user-stream", 0, n, b"k"), v)


class _Topic:
    def __init__(self, fail: int = 0) -> None:
        self.sent: list[bytes] = []
        self.fail = fail

    async def send(self, *, key: bytes | None, value: bytes) -> None:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("broker gone")
        self.sent.append(value)


async def test_rejections_go_to_the_dlq_and_errors_on_an_internal_topic_to_its_own() -> None:
    async def handler(m: Any, value: bytes | None) -> Rejected | None:
        if value == b"late":
            return Rejected(Reason.late, "too old")
        if value == b"boom":
            raise OverflowError("math range error")
        return None

    public, internal = _Topic(), _Topic()
    await dlq.each_event(_Stream([b"ok", b"late", b"boom"]), public, handler, errors_topic=internal)
    assert [DeadLetter.model_validate_json(v).reason for v in public.sent] == [Reason.late]
    [err] = [DeadLetter.model_validate_json(v) for v in internal.sent]
    assert err.reason is Reason.processing_error and err.offset == 2 and "OverflowError" in err.detail


async def test_a_failed_dead_letter_publish_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_wait(_: float) -> None:
        return None

    monkeypatch.setattr(dlq.asyncio, "sleep", no_wait)
    flaky = _Topic(fail=2)
    await dlq.dead_letter(
        flaky, topic="t", partition=0, offset=1, key=None, value=b"v", reason=Reason.invalid_json, detail="d"
    )
    assert len(flaky.sent) == 1
    dead = _Topic(fail=dlq.SEND_ATTEMPTS)
    before = dlq.metrics.DLQ_SEND_FAILURES._value.get()
    await dlq.dead_letter(  # never raises: counted and logged with the source coordinates
        dead, topic="t", partition=0, offset=2, key=None, value=b"v", reason=Reason.invalid_json, detail="d"
    )
    assert dead.sent == [] and dlq.metrics.DLQ_SEND_FAILURES._value.get() == before + 1
