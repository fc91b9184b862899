"""Contracts: valid and invalid examples of every type, and the validator's reasons."""

from __future__ import annotations

import orjson
import pytest

from schemas.dlq import Reason
from schemas.export import stale
from schemas.validate import Accepted, Rejected, ValidationPolicy, parse_ingress_topic, validate

POLICY = ValidationPolicy(channels=frozenset({"app", "web", "wechat"}), max_bytes=4096, fx_rates={"USD": 7.0})
BASE = {
    "event_id": "e-1",
    "channel": "app",
    "user_id": "u1",
    "occurred_at": "2026-03-01T08:00:00+08:00",
}

VALID = {
    "click": {**BASE, "type": "click", "click": {"target": "/home"}},
    "click_no_item": {**BASE, "type": "click"},
    "click_dismiss": {**BASE, "type": "click", "item_id": "c1", "click": {"target": "/r", "dismiss": True}},
    "view": {**BASE, "type": "view", "item_id": "c1", "view": {"duration_s": 120, "progress": 0.5}},
    "share": {**BASE, "type": "share", "item_id": "c1", "share": {"platform": "weibo"}},
    "purchase": {
        **BASE,
        "type": "purchase",
        "item_id": "c1",
        "purchase": {"order_id": "o1", "amount": 10, "currency": "USD", "coupon": "NEW10"},
    },
    "anonymous": {
        **{k: v for k, v in BASE.items() if k != "user_id"},
        "anonymous_id": "d1",
        "type": "click",
    },
}


def check(
    payload: object,
    topic_type: str | None = None,
    channel: str | None = "app",
    key: bytes | None = None,
):
    raw = payload if isinstance(payload, bytes) else orjson.dumps(payload)
    ttype = (
        topic_type if topic_type is not None else (payload.get("type") if isinstance(payload, dict) else None)
    )
    return validate(
        raw,
        topic_channel=channel,
        topic_type=ttype,
        policy=POLICY,
        key=key,
        check_key=key is not None,
    )


@pytest.mark.parametrize("name", sorted(VALID))
def test_valid_examples_are_accepted(name: str) -> None:
    result = check(VALID[name])
    assert isinstance(result, Accepted), result


def test_purchase_spend_is_normalised_to_base_currency() -> None:
    result = check(VALID["purchase"])
    assert isinstance(result, Accepted)
    assert result.spend == pytest.approx(70.0)
    assert result.event.purchase is not None and result.event.purchase.amount == 10


def test_unknown_fields_are_kept_under_properties() -> None:
    result = check({**VALID["click"], "campaign": "spring", "properties": {"ab": "B"}})
    assert isinstance(result, Accepted)
    assert result.event.properties == {"ab": "B", "campaign": "spring"}


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", Reason.invalid_json),
        (b"[1, 2]", Reason.not_an_object),
        (b"x" * 5000, Reason.oversized),
        ({**BASE, "type": "click", "user_id": None}, Reason.schema_violation),  # no identity
        (
            {**VALID["click"], "occurred_at": "2026-03-01T08:00:00"},
            Reason.schema_violation,
        ),  # naive time
        ({**VALID["click"], "occurred_at": 1767225600}, Reason.schema_violation),  # epoch number
        (
            {**VALID["click"], "occurred_at": "1970-01-01T00:00:00Z"},
            Reason.schema_violation,
        ),  # implausible
        ({**VALID["view"], "view": {"progress": 1.5}}, Reason.schema_violation),  # out of range
        ({**BASE, "type": "purchase", "item_id": "c1"}, Reason.schema_violation),  # missing block
        ({**BASE, "type": "share", "item_id": "c1"}, Reason.schema_violation),  # share without block
        ({**VALID["share"], "share": {"platform": ""}}, Reason.schema_violation),  # empty platform
        ({**VALID["click"], "click": {"target": "x" * 600}}, Reason.schema_violation),  # too long
        ({**BASE, "type": "view", "view": {"progress": 0.2}}, Reason.schema_violation),  # view w/o item
        ({**VALID["click"], "view": {"progress": 0.1}}, Reason.schema_violation),  # foreign block
        ({**BASE, "type": "click", "click": {"dismiss": True}}, Reason.schema_violation),  # dismiss w/o item
        (
            {**VALID["purchase"], "purchase": {"order_id": "o", "amount": -1, "currency": "USD"}},
            Reason.schema_violation,
        ),
        ({**VALID["click"], "event_id": "has space"}, Reason.schema_violation),
        ({**VALID["click"], "event_id": "x" * 200}, Reason.schema_violation),
        ({**VALID["click"], "type": "like"}, Reason.schema_violation),
        ({**VALID["click"], "channel": "myspace"}, Reason.unknown_channel),
        ({**VALID["click"], "channel": "web"}, Reason.topic_mismatch),
        (
            {**VALID["purchase"], "purchase": {"order_id": "o", "amount": 1, "currency": "XYZ"}},
            Reason.unknown_currency,
        ),
    ],
)
def test_invalid_examples_are_rejected_with_their_reason(payload: object, reason: Reason) -> None:
    result = check(payload)
    assert isinstance(result, Rejected)
    assert result.reason is reason, result.detail


def test_type_disagreeing_with_topic_is_a_topic_mismatch() -> None:
    result = check(VALID["view"], topic_type="click")
    assert isinstance(result, Rejected) and result.reason is Reason.topic_mismatch


def test_anonymous_event_must_be_keyed_by_its_anonymous_id() -> None:
    assert isinstance(check(VALID["anonymous"], key=b"d1"), Accepted)
    wrong = check(VALID["anonymous"], key=b"u1")
    assert isinstance(wrong, Rejected) and wrong.reason is Reason.key_mismatch


def test_tombstone_is_rejected() -> None:
    result = validate(None, topic_channel="app", topic_type="click", policy=POLICY)
    assert isinstance(result, Rejected) and result.reason is Reason.invalid_json


def test_ingress_topic_names_parse() -> None:
    assert parse_ingress_topic("t.", "t.events.wechat.view") == ("wechat", "view")
    assert parse_ingress_topic("t.", "t.events.wechat.like") is None
    assert parse_ingress_topic("t.", "events.wechat.view") is None


def test_exported_json_schemas_are_current() -> None:
    assert stale() == [], "run `nba schemas` (make schemas) and commit schemas/json"


@pytest.mark.parametrize(
    ("block", "bad"),
    [
        ("purchase", {"order_id": "o1", "amount": "49.0", "currency": "CNY"}),
        ("purchase", {"order_id": "o1", "amount": True, "currency": "CNY"}),
        ("view", {"duration_s": True}),
        ("view", {"progress": "0.5"}),
        ("click", {"dismiss": 1}),
        ("click", {"dismiss": "true"}),
    ],
)
def test_wrong_types_are_refused_not_coerced(block: str, bad: dict[str, object]) -> None:
    # issue 18, finding 7: "49.0" and booleans in numeric fields were applied
    raw = orjson.dumps({**BASE, "type": block, "item_id": "c1", block: bad})
    result = validate(raw, topic_channel="app", topic_type=block, policy=POLICY)
    assert isinstance(result, Rejected) and result.reason is Reason.schema_violation
