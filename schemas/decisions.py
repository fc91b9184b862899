"""Decision log (``marketing.decisions``, keyed by user), version 1.

Every decision the worker makes goes here: sent actions, decisions that found no allowed
channel (``no_action``), and decisions for users in the control group or held out of the action
type (``control``, ``holdout``; decided exactly as the others, never sent). With the candidates,
the rules that removed them and the probability with which the policy picked its action, any
other policy can be evaluated offline from this log. Only ``sent`` decisions also appear on
``marketing.actions``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from schemas.events import Identifier


class Candidate(BaseModel):
    """One (action, channel) the policy considered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    action_type: str = Field(min_length=1, max_length=64)
    channel: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    score: float
    removed_by: list[str] = Field(
        default_factory=list,
        description="Why it could not be chosen: 'consent', 'paused', 'suppressed', 'cooldown', 'cap_day', "
        "'cap_week', 'channel_cap_day', 'channel_cap_week'. Empty: allowed.",
    )
    action: str | None = Field(
        default=None, max_length=64, description="The catalog action's name (learned policy; v1.1)."
    )
    uplift: float | None = Field(
        default=None, description="Expected uplift in conversion probability (v1.1)."
    )
    p_convert: float | None = Field(
        default=None, description="Expected conversion probability if sent (v1.1)."
    )
    offer: float = Field(default=0.0, ge=0, description="Coupon value for this user (v1.1).")


class DecisionRecord(BaseModel):
    """One decision, whatever its outcome."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    decision_id: str = Field(
        min_length=1,
        max_length=64,
        description="The action_id of the chosen action, else a deterministic id.",
    )
    user_id: Identifier
    user_kind: Literal["user", "anonymous"] = "user"
    decided_at: AwareDatetime = Field(description="Event time of the decision.")
    trigger_event_id: str | None = Field(default=None, max_length=128)
    outcome: Literal["sent", "no_action", "control", "holdout"]
    action_id: str | None = Field(default=None, max_length=64, description="Set unless no_action.")
    action_type: str | None = Field(default=None, max_length=64)
    action: str | None = Field(
        default=None, max_length=64, description="The catalog action's name (learned policy; v1.1)."
    )
    channel: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,31}$")
    item_ids: list[Identifier] = Field(default_factory=list, max_length=50)
    send_at: AwareDatetime | None = None
    candidates: list[Candidate] = Field(default_factory=list, max_length=100)
    explored: bool = Field(default=False, description="Whether the choice was an exploration draw.")
    propensity: float = Field(
        ge=0, le=1, description="Probability with which the policy chose this action among the allowed ones."
    )
    policy: str = Field(min_length=1, max_length=64, description="Policy version.")
    model_versions: dict[str, str] = Field(default_factory=dict)
    segment: int | None = None
    stage: str | None = None
