"""User-level control events, version 1: consent (``users.consent``, compacted, keyed by user and
channel) and erase requests (``users.erase``, keyed by user). Produced by the platform's account
service (and by the simulator); consumed by decisioning."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Identifier


class ConsentEvent(BaseModel):
    """A user granted or revoked marketing contact on one channel."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    user_id: Identifier
    channel: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    granted: bool
    at: AwareDatetime = Field(description="Event time of the change.")
    source: str = Field(default="account", max_length=64, description="account, unsubscribe_link, support...")


class EraseRequest(BaseModel):
    """The user asked to be forgotten: everything keyed by them must go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    request_id: Identifier
    user_id: Identifier
    at: AwareDatetime = Field(description="Event time of the request.")
