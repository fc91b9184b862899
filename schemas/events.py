"""Ingress event envelope (``events.<channel>.<type>`` topics), version 1.

One envelope for every channel and type. Exactly one typed block matches ``type``
(``view``, ``click``, ``share`` or ``purchase``); unknown top-level fields are kept under
``properties`` instead of being rejected, so producers can add fields before we read them.
Event time is ``occurred_at`` (timezone-aware). The Kafka record timestamp (the producer's
clock) is used by one rule only: an event dated more than ``time.max_future_skew_s`` after its
record timestamp is refused as ``future_dated`` (a client with a wrong clock).

Numbers and booleans are strict: an amount sent as the string ``"49.0"`` or ``true`` as a
progress is refused, never coerced.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION: Literal[1] = 1
MIN_YEAR, MAX_YEAR = 2000, 2100

Identifier = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")]
"""Ids: 1..128 characters of letters, digits and ``_ . : @ -``."""


class EventType(StrEnum):
    """What the user did."""

    click = "click"
    view = "view"
    share = "share"
    purchase = "purchase"


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ViewProps(_Block):
    """A view of an item (a lesson played, a chapter read)."""

    duration_s: float = Field(
        default=0.0, ge=0, le=86_400, strict=True, description="Seconds viewed (a JSON number)."
    )
    progress: float = Field(
        default=0.0, ge=0, le=1, strict=True, description="Share of the item completed, 0..1 (a JSON number)."
    )


class ClickProps(_Block):
    """A click on a page element or link."""

    target: str = Field(default="", max_length=512, description="What was clicked (element, URL path).")
    dismiss: bool = Field(
        default=False,
        strict=True,
        description="The click says 'not interested' in item_id (needs item_id): the item is not "
        "recommended to this user again.",
    )


class ShareProps(_Block):
    """A share of an item to another platform or person."""

    platform: str = Field(
        min_length=1, max_length=64, description="Where it was shared, e.g. wechat_moments."
    )
    target: str | None = Field(default=None, max_length=512, description="Recipient or group, if known.")


class PurchaseProps(_Block):
    """A paid order."""

    order_id: str = Field(min_length=1, max_length=128)
    amount: float = Field(
        ge=0,
        le=1_000_000,
        strict=True,
        description='Amount paid, in `currency`: a JSON number (a string such as "49.0" is refused).',
    )
    currency: str = Field(
        pattern=r"^[A-Z]{3}$", description="ISO 4217 code; normalised to the base currency."
    )
    coupon: str | None = Field(default=None, max_length=64)


class Context(_Block):
    """Where the event happened; later rules use the timezone for the user's local time."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    timezone: str | None = Field(default=None, max_length=64, description="IANA name, e.g. Asia/Shanghai.")
    locale: str | None = Field(default=None, max_length=32)
    device: str | None = Field(default=None, max_length=128)


_BLOCKS = ("view", "click", "share", "purchase")


class Event(BaseModel):
    """One user interaction on one channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: Identifier
    type: EventType
    channel: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    user_id: Identifier | None = None
    anonymous_id: Identifier | None = None
    item_id: Identifier | None = None
    occurred_at: AwareDatetime = Field(
        description="Event time: ISO 8601 with a UTC offset, years 2000..2100."
    )
    session_id: str | None = Field(default=None, max_length=128)
    view: ViewProps | None = None
    click: ClickProps | None = None
    share: ShareProps | None = None
    purchase: PurchaseProps | None = None
    context: Context | None = None
    properties: dict[str, Any] = Field(
        default_factory=dict, max_length=64, description="Unknown extra fields, kept as sent."
    )

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _iso_string(cls, value: Any) -> Any:
        if not isinstance(value, str | datetime):
            raise ValueError(
                "occurred_at must be an ISO 8601 string with a UTC offset, e.g. 2026-03-01T08:00:00+08:00"
            )
        return value

    @field_validator("occurred_at")
    @classmethod
    def _plausible(cls, value: datetime) -> datetime:
        if not MIN_YEAR <= value.year <= MAX_YEAR:
            raise ValueError(f"occurred_at must fall in the years {MIN_YEAR}..{MAX_YEAR}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _keep_unknown_fields(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        known = cls.model_fields.keys()
        extra = {k: v for k, v in data.items() if k not in known}
        if not extra:
            return data
        kept = {k: v for k, v in data.items() if k in known}
        given = kept.get("properties")
        if given is not None and not isinstance(given, dict):
            raise ValueError("properties must be an object")  # pydantic reports it as a violation
        props = dict(given or {})
        for key, value in extra.items():
            props.setdefault(key, value)
        kept["properties"] = props
        return kept

    @model_validator(mode="after")
    def _check_identity_and_blocks(self) -> Event:
        if self.user_id is None and self.anonymous_id is None:
            raise ValueError("at least one of user_id and anonymous_id is required")
        for block in _BLOCKS:
            if block != self.type.value and getattr(self, block) is not None:
                raise ValueError(f"block '{block}' does not belong to an event of type '{self.type.value}'")
        if self.type is EventType.purchase and self.purchase is None:
            raise ValueError("a purchase event needs a 'purchase' block")
        if self.type is EventType.share and self.share is None:
            raise ValueError("a share event needs a 'share' block")
        if self.type in (EventType.purchase, EventType.view, EventType.share) and self.item_id is None:
            raise ValueError(f"a {self.type.value} event needs an item_id")
        if self.click is not None and self.click.dismiss and self.item_id is None:
            raise ValueError("a dismissing click needs the item_id it dismisses")
        return self

    @property
    def ingress_key(self) -> str:
        """Kafka key on the ingress topics: ``anonymous_id`` if present, else ``user_id``."""
        return self.anonymous_id if self.anonymous_id is not None else self.user_id  # type: ignore[return-value]
