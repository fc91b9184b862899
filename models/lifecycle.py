"""Lifecycle stages: where a user is in the customer lifecycle, in event time.

Stages, in order of engagement::

    acquisition -> activation -> retention -> expansion -> loyalty

plus two silence stages that override them: ``at_risk`` and ``dormant``. The silence thresholds
are relative to the user's own rhythm (the mean gap between their active days), clamped to
configured bounds, so a weekly learner is not "at risk" after three quiet days while a daily one
is.

Rules (defaults in :class:`LifecyclePolicy`, configurable through ``NBA_LIFECYCLE__*``):

* ``acquisition``: seen, not yet activated.
* ``activation``: a first meaningful engagement (a purchase, a share, or a view at least half
  watched), or ``activation_events`` events.
* ``retention``: activated and active on at least ``retention_days`` distinct days.
* ``expansion``: at least ``expansion_purchases`` purchases (repeat buying).
* ``loyalty``: at least ``loyalty_purchases`` purchases, at least one share (referral), and at
  least ``loyalty_recent_days`` active days in the ``loyalty_window_days`` before the newest event
  (sustained).
* ``at_risk``: silent for ``at_risk_factor`` x rhythm, clamped to [``at_risk_min_days``,
  ``at_risk_max_days``]; ``dormant``: ``dormant_factor`` x rhythm clamped to
  [``dormant_min_days``, ``dormant_max_days``]. A user with fewer than two active days has the
  rhythm ``default_rhythm_days``.

Silent users move to ``at_risk`` and ``dormant`` when the due-time index wakes them
(:func:`next_wake`), not only when they send an event; any new event re-evaluates the stage.

Clock: event time (the event's ``ts`` or the partition watermark).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from models.profile import Profile
from schemas.vocabulary import DAY


class Stage(StrEnum):
    acquisition = "acquisition"
    activation = "activation"
    retention = "retention"
    expansion = "expansion"
    loyalty = "loyalty"
    at_risk = "at_risk"
    dormant = "dormant"


@dataclass(frozen=True, slots=True)
class LifecyclePolicy:
    activation_events: int = 5
    retention_days: int = 3
    expansion_purchases: int = 2
    loyalty_purchases: int = 3
    loyalty_recent_days: int = 4
    loyalty_window_days: int = 30
    default_rhythm_days: float = 7.0
    at_risk_factor: float = 2.0
    at_risk_min_days: float = 3.0
    at_risk_max_days: float = 10.0
    dormant_factor: float = 3.0
    dormant_min_days: float = 7.0
    dormant_max_days: float = 14.0


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of stage, published on ``users.lifecycle``."""

    canonical: str
    from_stage: str
    to_stage: str
    at: float
    reason: str


def rhythm_days(profile: Profile, policy: LifecyclePolicy) -> float:
    """Mean gap between the user's active days, in days (``default_rhythm_days`` if < 2 days).

    >>> rhythm_days(Profile("u:1", days=[0, 2, 4]), LifecyclePolicy())
    2.0
    """
    days = profile.days
    if len(days) < 2:
        return policy.default_rhythm_days
    return (days[-1] - days[0]) / (len(days) - 1)


def silence_limits(profile: Profile, policy: LifecyclePolicy) -> tuple[float, float]:
    """Seconds of silence after which the user is at risk, and dormant."""
    r = rhythm_days(profile, policy)
    at_risk = min(max(policy.at_risk_factor * r, policy.at_risk_min_days), policy.at_risk_max_days)
    dormant = min(max(policy.dormant_factor * r, policy.dormant_min_days), policy.dormant_max_days)
    return at_risk * DAY, max(dormant, at_risk) * DAY


def engaged_stage(profile: Profile, policy: LifecyclePolicy) -> tuple[Stage, str]:
    """The stage from what the user has done (ignoring silence), and why."""
    shares = profile.by_type.get("share", 0)
    if profile.purchases >= policy.loyalty_purchases and shares >= 1 and profile.days:
        recent = sum(1 for d in profile.days if d > profile.days[-1] - policy.loyalty_window_days)
        if recent >= policy.loyalty_recent_days:
            return Stage.loyalty, (
                f"{profile.purchases} purchases, {shares} shares, {recent} active days in "
                f"{policy.loyalty_window_days}"
            )
    if profile.purchases >= policy.expansion_purchases:
        return Stage.expansion, f"{profile.purchases} purchases"
    activated = profile.engaged_at is not None or profile.events >= policy.activation_events
    if activated and len(profile.days) >= policy.retention_days:
        return Stage.retention, f"active on {len(profile.days)} days"
    if activated:
        why = "first purchase" if profile.purchases else "first meaningful engagement"
        if profile.engaged_at is None:
            why = f"{profile.events} events"
        return Stage.activation, why
    return Stage.acquisition, "seen, not activated"


def stage_at(profile: Profile, now: float, policy: LifecyclePolicy) -> tuple[Stage, str]:
    """The stage at event time ``now`` (silence counted from the newest event), and why.

    >>> p = Profile("u:1", last_seen=0.0, events=1, days=[0])
    >>> [stage_at(p, d * DAY, LifecyclePolicy())[0].value for d in (1, 11, 15)]
    ['acquisition', 'at_risk', 'dormant']
    """
    if profile.last_seen is None:
        return Stage.acquisition, "not seen"
    at_risk_s, dormant_s = silence_limits(profile, policy)
    silent = now - profile.last_seen
    rhythm = rhythm_days(profile, policy)
    # compared as sums, exactly as :func:`next_wake` computes the due times
    if now >= profile.last_seen + dormant_s:
        return Stage.dormant, f"silent {silent / DAY:.1f} days (rhythm {rhythm:.1f} days)"
    if now >= profile.last_seen + at_risk_s:
        return Stage.at_risk, f"silent {silent / DAY:.1f} days (rhythm {rhythm:.1f} days)"
    return engaged_stage(profile, policy)


def update(profile: Profile, now: float, policy: LifecyclePolicy) -> Transition | None:
    """Re-evaluate the stage at ``now``; the transition if it changed (the profile is updated).

    >>> p = Profile("u:1", last_seen=0.0, events=1, days=[0])
    >>> update(p, 0.0, LifecyclePolicy()) is None, update(p, 20 * DAY, LifecyclePolicy()).to_stage
    (True, 'dormant')
    """
    stage, reason = stage_at(profile, now, policy)
    if stage.value == profile.stage:
        return None
    change = Transition(profile.canonical, profile.stage, stage.value, now, reason)
    profile.stage = stage.value
    profile.stage_since = now
    return change


def next_wake(profile: Profile, policy: LifecyclePolicy) -> float | None:
    """Event time at which silence would next change the user's stage, or ``None``."""
    if profile.last_seen is None or profile.stage == Stage.dormant:
        return None
    at_risk_s, dormant_s = silence_limits(profile, policy)
    if profile.stage == Stage.at_risk:
        return profile.last_seen + dormant_s
    return profile.last_seen + at_risk_s
