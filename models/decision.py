"""The next-best-action decision: a pure function of a :class:`DecisionContext`.

``decide(ctx) -> Verdict``: no I/O, no clock but ``ctx.now`` (event time), no randomness but
``ctx.rng``. The worker, the offline evaluator and the tests call the same function. A
:class:`Verdict` carries the action to send (if any), the new contact state, and what the
decision log needs: every (action, channel) candidate considered with the rules that removed
it, the outcome (``sent``, ``no_action``, ``control``, ``holdout``), and the probability with
which the policy picked its action (1 for the deterministic rule; exploration comes later).

Control groups (:func:`group`): a deterministic share of users by hash is the global control
group, and per action type a further share is held out. Their decisions are made and logged
exactly as the others, but never sent; their contact state records a *shadow* send, which the
caps and cooldowns count (so control users are decided for under the same rules as treated
ones, and the two groups' decisions compare) but which is never answered, ignored or withdrawn.

Foundation policy (:class:`RulePolicy`): a user who viewed one item ``views_threshold`` times
without buying it gets ``recommend_item`` for that item, with up to ``also_recommend`` of their
recommendations (:mod:`models.recommend`), on their most engaged channel that they consent to and
that the contact policy (:mod:`models.contact`: kill switch, suppression, cooldowns, caps) allows
at the send time, which is the decision time moved out of the user's quiet hours. Every channel
passed over is named, with the rules that removed it, in the action's reasons and in
``Verdict.candidates``.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from models.catalog import CatalogEntry
from models.contact import ContactRules, ContactState, blocked, send_time, zone
from models.facts import EventFacts
from models.profile import Profile
from models.recommend import Recommendation

ACTION_NAMESPACE = uuid.UUID("6f1e3a52-8c1d-4d0e-9a57-3c0b7d2f9e41")
RULE_VERSION = "rule-1"


@dataclass(frozen=True, slots=True)
class RulePolicy:
    views_threshold: int = 3
    expiry_s: float = 2 * 86_400.0
    """An action expires this long after its send time."""
    also_recommend: int = 2
    """How many of the user's recommendations join the viewed item in the action."""


@dataclass(frozen=True, slots=True)
class DecisionContext:
    profile: Profile
    now: float
    """Event time of the decision (the trigger's ``occurred_at``, or a due time)."""
    rng: random.Random
    contact: ContactState = field(default_factory=ContactState)
    rules: ContactRules = field(default_factory=ContactRules)
    predictions: Mapping[str, float] = field(default_factory=dict)
    consent: Mapping[str, bool] = field(default_factory=dict)
    """channel -> consent; a channel absent from the map is allowed (explicit revocation only)."""
    catalog: Mapping[str, CatalogEntry] = field(default_factory=dict)
    trigger: EventFacts | None = None
    policy: RulePolicy = RulePolicy()
    model_versions: Mapping[str, str] = field(default_factory=dict)
    """Versions of the model snapshots whose outputs are in the profile and ``predictions``."""
    recommendations: Callable[[], Sequence[Recommendation]] | None = None
    """The user's recommendations, computed only when an action needs them."""
    control_share: float = 0.0
    """Share of users (by hash) in the global control group: decided and logged, never sent."""
    holdouts: Mapping[str, float] = field(default_factory=dict)
    """action type -> share of the other users held out of it (by hash): logged, never sent."""


@dataclass(frozen=True, slots=True)
class Decision:
    action_id: str
    action_type: str
    channel: str
    item_ids: tuple[str, ...]
    score: float
    reasons: tuple[str, ...]
    created_at: float
    send_at: float
    """Earliest send time: ``created_at`` moved out of the user's quiet hours (and, for the
    learned policy, to their most active hour: :mod:`models.reach`)."""
    expires_at: float
    trigger_event_id: str | None
    model_versions: Mapping[str, str]
    action: str = ""
    """The catalog action's name (the learned policy); empty for the foundation rule."""
    offer_value: float = 0.0
    """Coupon value (base currency), 0 without an offer."""
    offer_cost: float = 0.0
    """Expected cost of the coupon: its value times the expected conversion if sent."""

    @property
    def hold_s(self) -> float:
        """How long the action waits, in event time, between its decision and its send time."""
        return self.send_at - self.created_at


@dataclass(frozen=True, slots=True)
class Candidate:
    """One (action, channel) the policy considered."""

    action_type: str
    channel: str
    score: float
    removed_by: tuple[str, ...] = ()
    """``consent`` or contact rules (see :func:`models.contact.blocked`); empty: it was allowed."""
    action: str = ""
    """The catalog action's name (the learned policy); empty for the foundation rule."""
    uplift: float | None = None
    """Expected uplift in conversion probability (the learned policy)."""
    offer: float = 0.0
    """Coupon value of the action for this user (the learned policy)."""
    p_convert: float | None = None
    """Expected conversion probability if sent (the learned policy)."""
    value: float = 0.0
    """Value of a conversion (the learned policy: the catalog's, else the item's price)."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """What :func:`decide` concluded."""

    decision: Decision | None
    """The chosen action: sent when ``outcome`` is ``sent``; only logged for control and holdout."""
    contact: ContactState
    """The new contact state (settled at the decision time; with the send when one is sent)."""
    outcome: str = "none"
    """``sent``, ``no_action`` (candidates, none allowed), ``control``, ``holdout``, or ``none``
    (nothing relevant happened: no candidate, nothing to log)."""
    candidates: tuple[Candidate, ...] = ()
    propensity: float = 1.0
    """Probability with which the policy chose ``decision`` among the allowed candidates."""
    explored: bool = False
    policy: str = RULE_VERSION
    decision_id: str = ""
    """The action id of the chosen action, else a deterministic id of this no-action decision."""
    decided_at: float = 0.0
    """Event time of the decision."""
    trigger_event_id: str | None = None

    @property
    def send(self) -> Decision | None:
        """The action to publish, if any."""
        return self.decision if self.outcome == "sent" else None


def group(canonical: str, action_type: str, control_share: float, holdouts: Mapping[str, float]) -> str:
    """``control`` (the user is in the global control group), ``holdout`` (held out of this
    action type) or ``treatment``; deterministic in the user and the shares.

    >>> group("u:1", "recommend_item", 0.0, {}), group("u:1", "recommend_item", 1.0, {})
    ('treatment', 'control')
    >>> group("u:1", "recommend_item", 0.0, {"recommend_item": 1.0})
    'holdout'
    """
    if _unit(f"control|{canonical}") < control_share:
        return "control"
    if _unit(f"holdout|{action_type}|{canonical}") < holdouts.get(action_type, 0.0):
        return "holdout"
    return "treatment"


def _unit(key: str) -> float:
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def action_id(canonical: str, action_type: str, trigger: str) -> str:
    """Deterministic id: the same decision on a redelivered event has the same id.

    >>> action_id("u:1", "recommend_item", "app/e1") == action_id("u:1", "recommend_item", "app/e1")
    True
    """
    return uuid.uuid5(ACTION_NAMESPACE, f"{canonical}|{action_type}|{trigger}").hex


def _candidates(
    profile: Profile, ctx: DecisionContext, state: ContactState, action_type: str, score: float, at: float
) -> tuple[Candidate, ...]:
    """Every channel the user uses, most engaged first (``Profile.channels_by_engagement``),
    with the consent and contact rules that forbid it at send time ``at``."""
    out = []
    for channel in profile.channels_by_engagement():
        why: tuple[str, ...] = () if ctx.consent.get(channel, True) else ("consent",)
        why += blocked(ctx.rules, state, action_type, channel, at=at)
        out.append(Candidate(action_type, channel, score, why))
    return tuple(out)


def _name(catalog: Mapping[str, CatalogEntry], item: str) -> str:
    entry = catalog.get(item)
    return f"'{entry.title}'" if entry else f"item {item}"


def model_reasons(profile: Profile) -> tuple[str, ...]:
    """The churn risk with what drives it, and the value estimate, in words.

    >>> model_reasons(Profile("u:1", churn_risk=0.72, churn_reasons=["long inactive"], value_30d=31.5))
    ('churn risk 72% (long inactive)', 'expected spend in the next 30 days: 31.50')
    """
    out = []
    if profile.churn_risk is not None:
        why = f" ({', '.join(profile.churn_reasons)})" if profile.churn_reasons else ""
        out.append(f"churn risk {profile.churn_risk:.0%}{why}")
    if profile.value_30d is not None:
        out.append(f"expected spend in the next 30 days: {profile.value_30d:.2f}")
    return tuple(out)


def decide(ctx: DecisionContext) -> Verdict:
    """Decide what to send, if anything (see :class:`Verdict`).

    Examples
    --------
    >>> p = Profile("u:1", by_channel={"wechat": 3}, item_views={"c1": [3, 9.0]}, timezone="UTC")
    >>> t = EventFacts(event_id="e3", type="view", channel="wechat", ts=12 * 3600.0, item_id="c1")
    >>> v = decide(DecisionContext(profile=p, now=t.ts, rng=random.Random(0), trigger=t))
    >>> v.outcome, v.send.channel, v.send.item_ids, v.contact.last_sent("recommend_item") / 3600
    ('sent', 'wechat', ('c1',), 12.0)
    >>> t2 = EventFacts(event_id="e4", type="view", channel="wechat", ts=13 * 3600.0, item_id="c1")
    >>> ctx2 = DecisionContext(profile=p, now=t2.ts, rng=random.Random(0), trigger=t2, contact=v.contact)
    >>> v2 = decide(ctx2)
    >>> v2.outcome, v2.candidates[0].removed_by  # within the action type's cooldown
    ('no_action', ('cooldown', 'channel_cap_day'))
    """
    trigger, profile, policy = ctx.trigger, ctx.profile, ctx.policy
    state = ctx.contact.settle(ctx.now, ctx.rules)
    if trigger is None or trigger.type != "view" or trigger.item_id is None:
        return Verdict(None, state)
    item = trigger.item_id
    views = int(profile.item_views.get(item, [0, 0.0])[0])
    if views < policy.views_threshold or item in profile.bought:
        return Verdict(None, state)
    kind = "recommend_item"
    at = send_time(ctx.rules, ctx.now, profile.timezone)
    candidates = _candidates(profile, ctx, state, kind, float(views), at)
    allowed = [c for c in candidates if not c.removed_by]
    if not allowed:
        none_id = action_id(profile.canonical, "none", trigger.dedupe_key)
        return Verdict(None, state, "no_action", candidates, decision_id=none_id, **_when(ctx))
    channel = allowed[0].channel
    filtered = {c.channel: c.removed_by for c in candidates[: candidates.index(allowed[0])]}
    name = _name(ctx.catalog, item)
    also = [r for r in (ctx.recommendations() if ctx.recommendations else ()) if r.item_id != item]
    also = also[: policy.also_recommend]
    where = f"most engaged on {channel} ({profile.by_channel.get(channel, 0)} of {profile.events} events)"
    if filtered:
        where = f"on {channel}, the most engaged channel left after " + "; ".join(
            f"{ch}: {', '.join(why)}" for ch, why in filtered.items()
        )
    reasons = (
        f"viewed {name} {views} times without buying it",
        where,
        *((f"held until {_local(at, profile.timezone, ctx.rules)} (quiet hours)",) if at > ctx.now else ()),
        *model_reasons(profile),
        *(f"also recommended: {_name(ctx.catalog, r.item_id)} ({r.reason})" for r in also),
    )
    decision = Decision(
        action_id=action_id(profile.canonical, kind, trigger.dedupe_key),
        action_type=kind,
        channel=channel,
        item_ids=(item, *(r.item_id for r in also)),
        score=float(views),
        reasons=reasons,
        created_at=ctx.now,
        send_at=at,
        expires_at=at + policy.expiry_s,
        trigger_event_id=trigger.event_id,
        model_versions={"policy": RULE_VERSION, **ctx.model_versions},
    )
    arm = group(profile.canonical, kind, ctx.control_share, ctx.holdouts)
    outcome = "sent" if arm == "treatment" else arm
    sent = state.sent(
        kind,
        channel,
        at=at,
        action_id=decision.action_id,
        expires_at=decision.expires_at,
        shadow=outcome != "sent",
    )
    return Verdict(decision, sent, outcome, candidates, decision_id=decision.action_id, **_when(ctx))


def _when(ctx: DecisionContext) -> dict[str, Any]:
    return {"decided_at": ctx.now, "trigger_event_id": ctx.trigger.event_id if ctx.trigger else None}


def _local(at: float, timezone: str | None, rules: ContactRules) -> str:
    return datetime.fromtimestamp(at, zone(timezone, rules.default_timezone)).strftime("%H:%M local time")
