"""Next-best-action event (``marketing.actions``, keyed by user), version 1.

Senders act on these. ``action_id`` is deterministic (the same decision always has the same id),
so a sender that sees an id twice sends once.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Identifier


class Offer(BaseModel):
    """An incentive attached to an action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str = Field(min_length=1, max_length=64, description="e.g. coupon, free_trial.")
    value: float = Field(ge=0, description="Face value in the base currency (or days for a trial).")
    cost: float = Field(default=0.0, ge=0, description="Expected cost to the business, base currency.")
    code: str | None = Field(default=None, max_length=64)


class NextBestAction(BaseModel):
    """What to send to one user, on which channel, and why."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    event: Literal["action", "action_cancelled"] = Field(
        default="action", description="'action_cancelled' withdraws an earlier action_id."
    )
    action_id: str = Field(min_length=1, max_length=64, description="Deterministic idempotency key.")
    user_id: Identifier = Field(
        description="The canonical user: a user_id, or an anonymous_id if never logged in."
    )
    user_kind: Literal["user", "anonymous"] = "user"
    action_type: str = Field(min_length=1, max_length=64, description="e.g. recommend_item.")
    action: str | None = Field(
        default=None,
        max_length=64,
        description="The catalog action's name, if the learned policy chose it (added in v1.1).",
    )
    channel: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    item_ids: list[Identifier] = Field(default_factory=list, max_length=50)
    offer: Offer | None = None
    score: float
    reasons: list[str] = Field(default_factory=list, max_length=20, description="Readable by a marketer.")
    model_versions: dict[str, str] = Field(default_factory=dict)
    trigger_event_id: str | None = Field(default=None, max_length=128)
    created_at: AwareDatetime = Field(description="Event time of the decision.")
    send_at: AwareDatetime | None = Field(default=None, description="Earliest time to send; now if absent.")
    expires_at: AwareDatetime = Field(description="Do not send after this (event time).")
    segment: int | None = Field(default=None, description="The user's segment when decided (added in v1.1).")
    stage: str | None = Field(default=None, description="The user's lifecycle stage when decided (v1.1).")
