"""Sender feedback on an action (``marketing.feedback``, keyed by user), version 1."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Identifier


class FeedbackKind(StrEnum):
    delivered = "delivered"
    opened = "opened"
    clicked = "clicked"
    unsubscribed = "unsubscribed"
    bounced = "bounced"


class Feedback(BaseModel):
    """What happened to one sent action."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    action_id: str = Field(min_length=1, max_length=64)
    user_id: Identifier
    user_kind: Literal["user", "anonymous"] = Field(
        default="user", description="As in the action: 'anonymous' if user_id is an anonymous_id (v1.1)."
    )
    channel: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    kind: FeedbackKind
    at: AwareDatetime = Field(description="Event time of the outcome.")
