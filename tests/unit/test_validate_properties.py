"""Property: whatever the bytes or JSON, the validator never raises and always decides."""

from __future__ import annotations

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from schemas.dlq import Reason
from schemas.validate import Accepted, Rejected, ValidationPolicy, validate

POLICY = ValidationPolicy(channels=frozenset({"app", "web"}), max_bytes=8192)

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda children: (
        st.lists(children, max_size=6) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=30,
)
FIELDS = [
    "event_id",
    "type",
    "channel",
    "user_id",
    "anonymous_id",
    "item_id",
    "occurred_at",
    "view",
    "click",
    "share",
    "purchase",
    "context",
    "properties",
    "session_id",
]
event_like = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.text(max_size=20) | json_values,
        "type": st.sampled_from(["click", "view", "share", "purchase"]) | json_values,
        "channel": st.sampled_from(["app", "web", "sms"]) | json_values,
        "user_id": st.text(max_size=10) | json_values,
        "anonymous_id": st.text(max_size=10),
        "item_id": st.text(max_size=10) | json_values,
        "occurred_at": st.datetimes(timezones=st.just(None) | st.timezones()).map(lambda d: d.isoformat())
        | json_values,
        "view": st.fixed_dictionaries({}, optional={"progress": json_values, "duration_s": json_values}),
        "purchase": st.fixed_dictionaries(
            {}, optional={"order_id": json_values, "amount": json_values, "currency": json_values}
        ),
        "context": json_values,
        "properties": json_values,
    },
)


def _decided(result: object) -> None:
    assert isinstance(result, Accepted | Rejected)
    if isinstance(result, Rejected):
        assert isinstance(result.reason, Reason)
        assert isinstance(result.detail, str)


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=10_000))
def test_arbitrary_bytes(raw: bytes) -> None:
    _decided(
        validate(raw, topic_channel="app", topic_type="click", policy=POLICY, key=raw[:4], check_key=True)
    )


@settings(max_examples=400, deadline=None)
@given(json_values)
@example({"": None, "properties": [None]})  # found by hypothesis: unknown fields + non-object properties
def test_arbitrary_json(value: object) -> None:
    _decided(validate(orjson.dumps(value), topic_channel="app", topic_type="view", policy=POLICY))


@settings(max_examples=600, deadline=None)
@given(event_like)
def test_arbitrary_event_shaped_json(value: dict[str, object]) -> None:
    _decided(validate(orjson.dumps(value), topic_channel=None, topic_type=None, policy=POLICY))
