"""The action catalog (``action_catalog.v1``): what marketing may send, to whom, where, and at what cost.

Marketers write it as YAML (the shipped default is ``app/actions.yaml``; ``NBA_DECISION__CATALOG_PATH``
points the worker at another file, and ``nba policy catalog`` changes it at run time through the
``nba.config`` topic). A catalog is accepted whole or refused whole: :func:`app.action_catalog.load`
names the line of the first problem.

Each action has a type (the message kind senders render), eligibility over the profile, the
predictions and the triggering event, the channels it may use, an offer rule (coupon size by the
user's price sensitivity, and its cost), a cooldown, an expiry and a business weight. The policy
(:mod:`models.arbitration`) scores every eligible (action, channel) by its expected uplift::

    (P(convert | user, action, channel) - P(convert | user, no action)) * value - coupon * P(convert | action)

times the weight (the uplift scaled by the user's own answer rate on the channel, ``channels``),
and sends the best one if it clears ``min_score`` (else nothing), exploring with probability
``exploration``, at the user's most active hour (``timing``).
"""

from __future__ import annotations

from typing import Annotated, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from schemas.vocabulary import CHANNELS

ActionType = Literal[
    "recommend_item",
    "winback_offer",
    "onboarding_nudge",
    "abandoned_view_reminder",
    "upsell_membership",
    "share_reward",
]
ACTION_TYPES: tuple[str, ...] = get_args(ActionType)
Stage = Literal["acquisition", "activation", "retention", "expansion", "loyalty", "at_risk", "dormant"]
Trigger = Literal["view", "click", "share", "purchase"]
TRIGGERS: tuple[Trigger, ...] = ("view", "click", "share", "purchase")


class Range(BaseModel):
    """Inclusive bounds; a missing bound is open."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    min: float | None = None
    max: float | None = None

    def holds(self, value: float | None) -> bool:
        """``value`` is within the bounds (an unknown value never is, unless both are open)."""
        if self.min is None and self.max is None:
            return True
        if value is None:
            return False
        return (self.min is None or value >= self.min) and (self.max is None or value <= self.max)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


class Eligibility(BaseModel):
    """Who may get the action, and on which events. Every condition given must hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    triggers: list[Trigger] = Field(
        default_factory=lambda: list(TRIGGERS),
        description="Event types on which the action is considered.",
    )
    stages: list[Stage] | None = Field(None, description="Lifecycle stages (any, if absent).")
    segments: list[int] | None = Field(None, description="Segments (any, if absent).")
    churn_risk: Range = Field(default_factory=Range, description="Bounds on the churn risk (0..1).")
    value_30d: Range = Field(default_factory=Range, description="Bounds on the expected 30-day spend.")
    purchases: Range = Field(default_factory=Range, description="Bounds on the user's purchase count.")
    days_since_purchase: Range = Field(
        default_factory=Range, description="Bounds on days since the last purchase (event time)."
    )
    item_views: Range = Field(
        default_factory=Range,
        description="Bounds on how often the user viewed the triggering item (with item: viewed).",
    )


class CouponTier(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_sensitivity: float = Field(ge=0, le=1, description="Price sensitivity (0..1) from which it applies.")
    value: float = Field(gt=0, description="Coupon value (base currency).")


class Offer(BaseModel):
    """A coupon sized by the user's price sensitivity (the share of their views on free or cheap
    items): the first tier whose ``min_sensitivity`` the user reaches. Its cost is the coupon value,
    paid on every conversion it is used for, whether the action caused it or not."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tiers: list[CouponTier] = Field(min_length=1, description="Highest min_sensitivity first.")

    @model_validator(mode="after")
    def _sorted(self) -> Self:
        levels = [t.min_sensitivity for t in self.tiers]
        if levels != sorted(levels, reverse=True):
            raise ValueError("tiers must be ordered by min_sensitivity, highest first")
        return self


class ActionSpec(BaseModel):
    """One action marketing may send."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="Unique id; contact cooldowns and holdouts are per name.",
    )
    type: ActionType = Field(description="The message kind senders render.")
    item: Literal["viewed", "recommended"] = Field(
        "recommended",
        description="viewed: the triggering item (not bought); recommended: the user's top recommendation.",
    )
    eligibility: Eligibility = Field(default_factory=Eligibility)
    channels: list[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")]] = Field(
        default_factory=lambda: [str(c) for c in CHANNELS],
        min_length=1,
        description=(
            "Channels this action may go out on; each must be one of NBA_INGRESS__CHANNELS (checked "
            "when the worker loads the catalog). Omitted: every configured channel."
        ),
    )
    offer: Offer | None = None
    cooldown_days: float | None = Field(
        None, ge=0, description="Days between two sends of this action to a user (else the contact default)."
    )
    expiry_hours: float = Field(48.0, gt=0, description="The action expires this long after its send time.")
    weight: float = Field(1.0, gt=0, description="Business weight: multiplies the score.")
    value: float | None = Field(
        None,
        gt=0,
        description="Value of a conversion (base currency); absent: the item's price (at least 1).",
    )


class Timing(BaseModel):
    """When to send: the user's most active hours, learned from their events and answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="false: send at once (after quiet hours), as the rule does.")
    min_events: int = Field(
        10, ge=0, description="Events with a known hour a user needs before their active hours are trusted."
    )
    max_delay_hours: float = Field(
        24.0, ge=0, le=48, description="Hold a message at most this long for a better hour."
    )
    tolerance: float = Field(
        0.8,
        ge=0,
        le=1,
        description="Send at once if the user's activity now is at least this share of their best "
        "hour's (an hour's activity counts the events within two hours of it).",
    )
    answer_weight: float = Field(
        3.0, ge=0, description="An opened or clicked message counts as this many events at its hour."
    )


class ChannelLearning(BaseModel):
    """Which channel: each user's answer rate per channel, shrunk towards their segment's."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="false: every user gets the channel factors of all users.")
    prior_weight: float = Field(
        10.0,
        gt=0,
        description="Messages to a user on a channel that weigh as much as their segment's answer "
        "rate there.",
    )


class ActionCatalog(BaseModel):
    """The whole catalog, with the arbitration's levers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    version: str = Field(min_length=1, max_length=64, description="Shown in every decision it makes.")
    min_score: float = Field(0.0, description="Send nothing unless the best score exceeds this.")
    exploration: float = Field(
        0.1,
        ge=0,
        le=1,
        description="Probability of picking uniformly among the allowed choices (and nothing) "
        "instead of the best; the exact probability of each pick is logged.",
    )
    optimism: float = Field(
        1.0,
        ge=0,
        description="When no choice is expected to beat min_score, send the one whose score is "
        "highest at this many standard deviations of its uplift above the estimate, if that beats "
        "min_score: an action is dropped once the evidence says it does not pay, not while it is "
        "merely uncertain. 0: trust the estimates as they are.",
    )
    prior_uplift: float = Field(
        0.01,
        ge=0,
        le=1,
        description="Uplift assumed for an action before outcomes are known; outcomes replace it "
        "gradually (see prior_weight).",
    )
    prior_weight: float = Field(
        100.0, ge=0, description="How many outcomes of an action weigh as much as the prior."
    )
    attribution_days: float = Field(
        3.0, gt=0, description="A purchase of the action's item within this many days is its conversion."
    )
    timing: Timing = Field(default_factory=Timing)
    channels: ChannelLearning = Field(default_factory=ChannelLearning)
    actions: list[ActionSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self) -> Self:
        seen: set[str] = set()
        for spec in self.actions:
            if spec.name in seen:
                raise ValueError(f"action name {spec.name!r} is used twice")
            seen.add(spec.name)
        return self

    def get(self, name: str) -> ActionSpec | None:
        return next((a for a in self.actions if a.name == name), None)
