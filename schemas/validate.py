"""Turns raw ingress bytes into a valid :class:`~schemas.events.Event` or a machine-readable reason.

The promise: :func:`validate` never raises, whatever the bytes; it returns either
:class:`Accepted` (the event, plus its spend normalised to the base currency) or
:class:`Rejected` (a :class:`~schemas.dlq.Reason` and a short detail).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import orjson
from pydantic import ValidationError

from schemas.dlq import Reason
from schemas.events import Event, EventType

_EVENT_TYPES = frozenset(t.value for t in EventType)


@dataclass(frozen=True, slots=True)
class ValidationPolicy:
    """What the deployment accepts: its channels, a size limit and how to normalise money."""

    channels: frozenset[str]
    max_bytes: int = 64 * 1024
    base_currency: str = "CNY"
    fx_rates: Mapping[str, float] = field(default_factory=dict)
    """Units of base currency per unit of each other currency (the base currency is 1)."""

    def rate(self, currency: str) -> float | None:
        if currency == self.base_currency:
            return 1.0
        return self.fx_rates.get(currency)


@dataclass(frozen=True, slots=True)
class Accepted:
    event: Event
    spend: float
    """Purchase amount in the base currency (0 for other types)."""


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: Reason
    detail: str


def ingress_topic(prefix: str, channel: str, event_type: str) -> str:
    """Name of the ingress topic of one channel and type: ``{prefix}events.<channel>.<type>``."""
    return f"{prefix}events.{channel}.{event_type}"


def parse_ingress_topic(prefix: str, topic: str) -> tuple[str, str] | None:
    """``(channel, type)`` of an ingress topic name, or ``None`` if it is not one."""
    if not topic.startswith(prefix):
        return None
    parts = topic[len(prefix) :].split(".")
    if len(parts) != 3 or parts[0] != "events" or parts[2] not in _EVENT_TYPES:
        return None
    return parts[1], parts[2]


def _first_errors(exc: ValidationError, limit: int = 3) -> str:
    items = []
    for err in exc.errors(include_url=False, include_input=False)[:limit]:
        loc = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        items.append(f"{loc}: {err.get('msg', '')}")
    return "; ".join(items)[:2048]


def validate(
    raw: bytes | None,
    *,
    topic_channel: str | None,
    topic_type: str | None,
    policy: ValidationPolicy,
    key: bytes | None = None,
    check_key: bool = False,
) -> Accepted | Rejected:
    """Validate one ingress message against the contract, the deployment and the topic it came on.

    Parameters
    ----------
    raw
        The record value as received (``None`` for a tombstone).
    topic_channel, topic_type
        Channel and type named by the source topic; ``None`` skips that check.
    policy
        Allowed channels, size limit and currency rates.
    key, check_key
        With ``check_key``, an event that carries an ``anonymous_id`` must be keyed by it (the
        ingress key rule): identity links are kept per partition of that key, so a wrongly keyed
        anonymous event could be stitched against the wrong partition's state.

    Examples
    --------
    >>> policy = ValidationPolicy(channels=frozenset({"app"}))
    >>> validate(b"{", topic_channel="app", topic_type="click", policy=policy).reason.value
    'invalid_json'
    """
    if raw is None:
        return Rejected(Reason.invalid_json, "empty value (tombstone)")
    if len(raw) > policy.max_bytes:
        return Rejected(Reason.oversized, f"{len(raw)} bytes > limit {policy.max_bytes}")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return Rejected(Reason.invalid_json, str(exc)[:2048])
    if not isinstance(data, dict):
        return Rejected(Reason.not_an_object, f"top-level JSON is {type(data).__name__}, not an object")
    try:
        event = Event.model_validate(data)
    except ValidationError as exc:
        return Rejected(Reason.schema_violation, _first_errors(exc))
    if event.channel not in policy.channels:
        return Rejected(Reason.unknown_channel, f"channel '{event.channel}' is not configured")
    if topic_channel is not None and event.channel != topic_channel:
        return Rejected(Reason.topic_mismatch, f"channel '{event.channel}' sent on a '{topic_channel}' topic")
    if topic_type is not None and event.type.value != topic_type:
        return Rejected(Reason.topic_mismatch, f"type '{event.type.value}' sent on a '{topic_type}' topic")
    if check_key and event.anonymous_id is not None and key != event.anonymous_id.encode():
        return Rejected(Reason.key_mismatch, "an event with an anonymous_id must be keyed by it")
    spend = 0.0
    if event.purchase is not None:
        rate = policy.rate(event.purchase.currency)
        if rate is None:
            return Rejected(Reason.unknown_currency, f"no rate for '{event.purchase.currency}'")
        spend = event.purchase.amount * rate
    return Accepted(event, spend)
