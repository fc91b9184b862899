"""Lifecycle transition event (``users.lifecycle``, keyed by user), version 1.

Published by the worker whenever a user's lifecycle stage changes, for marketing tools (journey
builders, CRM). Stages: acquisition, activation, retention, expansion, loyalty, at_risk,
dormant; the rules are in ``models/lifecycle.py`` and the README.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Identifier

StageName = Literal["acquisition", "activation", "retention", "expansion", "loyalty", "at_risk", "dormant"]


class LifecycleChange(BaseModel):
    """One user moved from one stage to another."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    user_id: Identifier = Field(description="The canonical user: a user_id, or an anonymous_id.")
    user_kind: Literal["user", "anonymous"] = "user"
    from_stage: StageName = Field(alias="from", serialization_alias="from")
    to_stage: StageName = Field(alias="to", serialization_alias="to")
    at: AwareDatetime = Field(description="Event time of the change (an event, or the watermark).")
    reason: str = Field(max_length=256, description="Readable by a marketer.")
    segment: int | None = Field(default=None, description="The user's segment at the change.")
