"""The learned policy: arbitration over the action catalog by expected uplift, with exploration.

:class:`LearnedPolicy` decides, for one decision context (:class:`models.decision.DecisionContext`):

1. **eligible actions**: the catalog's actions (:mod:`schemas.action_catalog`) whose triggers,
   stages, segments, churn risk, value, purchases and item views hold, with their item (the
   triggering item, not bought, or the user's top recommendation) and their coupon (by the
   user's price sensitivity);
2. **send time**: at once, or held for the user's most active hour (:func:`models.reach.best_send_time`);
3. **contact filter**: every (action, channel) on the action's channels that the user uses, with
   the consent and contact rules (:func:`models.contact.blocked`, with the action's cooldown) that
   forbid it at the send time;
4. **score** of each allowed (action, channel): ``(uplift * value - coupon * P(convert | action))
   * weight``, the uplift from :class:`models.uplift.UpliftModel` times the user's own channel
   factor (:func:`models.reach.channel_factor`: how much more than an average user they open
   messages on that channel);
5. **choice**: the best allowed one if its score beats ``min_score``; else the best by an
   optimistic score (the uplift ``optimism`` standard deviations above its estimate) if that
   beats ``min_score`` (an action is dropped when the evidence says it does not pay, not while
   it is uncertain); else nothing. With probability ``exploration`` the choice is instead drawn
   uniformly among the allowed ones and nothing. The probability of the pick under this rule is
   exact and logged (``Verdict.propensity``): ``(1 - e) * [pick is the greedy one] + e / (allowed + 1)``.

The decision is pure: randomness comes from ``ctx.rng`` only, time from ``ctx.now`` only. Every
decision point also yields an :class:`Exposure`: what the uplift model learns once the
attribution window has told whether the item was bought (:mod:`models.attribution`); when
nothing is sent it describes the best candidate, untreated, so the baseline is learned on the
same items as the treatments. Every exposure's window opens at the send time, sent or not: a
control window opened at the decision would count the purchases made while a treated message is
still held (for quiet or inactive hours), and the uplift would read lower than it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from models.contact import ContactRules, blocked
from models.decision import (
    Candidate,
    Decision,
    DecisionContext,
    Verdict,
    _local,
    _name,
    _when,
    action_id,
    group,
    model_reasons,
)
from models.profile import Profile
from models.reach import best_send_time, channel_factor
from models.uplift import NONE, UpliftModel, decision_features, last_purchase, price_sensitivity
from schemas.action_catalog import ActionCatalog, ActionSpec
from schemas.vocabulary import DAY


@dataclass(frozen=True, slots=True)
class Exposure:
    """A decision point's untreated or treated exposure, to be labelled by the attribution window."""

    decision_id: str
    item: str
    action_type: str
    """The action type sent (or logged for control), or ``none``."""
    channel: str
    offer: float
    x: dict[str, float]
    at: float
    """Send time: when the message is (or, untreated, would have been) delivered; the window opens here
    for every group, so a purchase between the decision and a held send counts for none of them."""
    until: float
    """End of the attribution window."""
    group: str
    """``treatment``, ``control``, ``holdout`` or ``none`` (the policy chose nothing)."""
    decided: str = NONE
    """The action type decided (sent or, for control and holdout, only logged)."""
    decided_channel: str = ""


@dataclass(frozen=True, slots=True)
class _Option:
    spec: ActionSpec
    item: str
    why_item: str
    offer: float
    value: float
    x: dict[str, float]


@dataclass(frozen=True, slots=True)
class LearnedPolicy:
    """Arbitration over ``catalog`` with ``model``'s uplift (module docstring)."""

    catalog: ActionCatalog
    model: UpliftModel | None = None

    @property
    def version(self) -> str:
        n = self.model.n_learned if self.model is not None else 0
        return f"uplift-{self.catalog.version}-{n}"

    def decide(self, ctx: DecisionContext) -> tuple[Verdict, Exposure | None]:
        profile, trigger, catalog = ctx.profile, ctx.trigger, self.catalog
        state = ctx.contact.settle(ctx.now, ctx.rules)
        if trigger is None:
            return Verdict(None, state, policy=self.version), None
        options = self._options(ctx)
        if not options:
            return Verdict(None, state, policy=self.version), None
        at, moved = best_send_time(profile, ctx.now, ctx.rules, catalog.timing)
        channels = profile.channels_by_engagement()
        factors = self._channel_factors(profile, channels)
        scored: list[tuple[Candidate, _Option]] = []
        optimistic: dict[tuple[str, str], float] = {}
        for option in options:
            rules = _with_cooldown(ctx.rules, option.spec)
            p0 = self.model.p_convert(option.x, NONE, "") if self.model is not None else 0.0
            for channel in channels:
                if channel not in option.spec.channels:
                    continue
                why: tuple[str, ...] = () if ctx.consent.get(channel, True) else ("consent",)
                why += blocked(rules, state, option.spec.name, channel, at=at)
                uplift, sd = (
                    self.model.uplift_sd(option.x, option.spec.type, channel)
                    if self.model is not None
                    else (catalog.prior_uplift, 0.0)
                )
                uplift, sd = uplift * factors[channel], sd * factors[channel]
                score = (uplift * option.value - option.offer * (p0 + uplift)) * option.spec.weight
                if self.model is not None and catalog.optimism:
                    high = uplift + catalog.optimism * sd
                    optimistic[(option.spec.name, channel)] = (
                        high * option.value - option.offer * (p0 + high)
                    ) * option.spec.weight
                scored.append(
                    (
                        Candidate(
                            option.spec.type,
                            channel,
                            round(score, 6),
                            why,
                            option.spec.name,
                            round(uplift, 6),
                            option.offer,
                            round(p0 + uplift, 6),
                            option.value,
                        ),
                        option,
                    )
                )
        candidates = tuple(c for c, _ in scored)
        if not scored:
            return Verdict(None, state, policy=self.version), None
        allowed = [(c, o) for c, o in scored if not c.removed_by]
        if not allowed:  # nothing could be sent: logged, no exposure (nothing was decided)
            none_id = action_id(profile.canonical, "none", trigger.dedupe_key)
            return Verdict(
                None, state, "no_action", candidates, policy=self.version, decision_id=none_id, **_when(ctx)
            ), None
        best = max(allowed, key=lambda co: co[0].score, default=None)
        greedy = best if best is not None and best[0].score > catalog.min_score else None
        if greedy is None and optimistic:
            hopeful = max(allowed, key=lambda co: optimistic.get((co[0].action, co[0].channel), -math.inf))
            if optimistic.get((hopeful[0].action, hopeful[0].channel), -math.inf) > catalog.min_score:
                greedy = hopeful
        explored = ctx.rng.random() < catalog.exploration
        picked = ctx.rng.choice([*allowed, None]) if explored else greedy
        propensity = (1 - catalog.exploration) * (picked is greedy) + catalog.exploration / (len(allowed) + 1)
        assert trigger is not None
        if picked is None:
            none_id = action_id(profile.canonical, "none", trigger.dedupe_key)
            assert best is not None
            exposure = self._exposure(none_id, best[1], NONE, "", at, "none")
            verdict = Verdict(
                None,
                state,
                "no_action",
                candidates,
                propensity=propensity,
                explored=explored,
                policy=self.version,
                decision_id=none_id,
                **_when(ctx),
            )
            return verdict, exposure
        candidate, option = picked
        decision = self._decision(ctx, candidate, option, (at, moved), scored, explored)
        arm = group(profile.canonical, option.spec.name, ctx.control_share, ctx.holdouts)
        outcome = "sent" if arm == "treatment" else arm
        sent = state.sent(
            option.spec.name,
            candidate.channel,
            at=at,
            action_id=decision.action_id,
            expires_at=decision.expires_at,
            shadow=outcome != "sent",
        )
        treated = outcome == "sent"
        exposure = self._exposure(
            decision.action_id,
            option,
            option.spec.type if treated else NONE,
            candidate.channel if treated else "",
            at,
            arm,
            (option.spec.type, candidate.channel),
        )
        verdict = Verdict(
            decision,
            sent,
            outcome,
            candidates,
            propensity=propensity,
            explored=explored,
            policy=self.version,
            decision_id=decision.action_id,
            **_when(ctx),
        )
        return verdict, exposure

    def _channel_factors(self, profile: Profile, channels: list[str]) -> dict[str, float]:
        """How much more than an average user this one answers on each channel (:mod:`models.reach`)."""
        if self.model is None:
            return dict.fromkeys(channels, 1.0)
        cfg, model, segment = self.catalog.channels, self.model, profile.segment
        return {
            ch: channel_factor(profile, ch, model.answer_rate(ch, segment), model.answer_rate(ch), cfg)
            for ch in channels
        }

    def _exposure(
        self,
        decision_id: str,
        option: _Option,
        action: str,
        channel: str,
        at: float,
        arm: str,
        decided: tuple[str, str] = (NONE, ""),
    ) -> Exposure:
        offer = option.offer if action != NONE else 0.0
        until = at + self.catalog.attribution_days * DAY
        return Exposure(decision_id, option.item, action, channel, offer, option.x, at, until, arm, *decided)

    def _options(self, ctx: DecisionContext) -> list[_Option]:
        """The eligible actions with their item, coupon, value and features."""
        profile, trigger = ctx.profile, ctx.trigger
        assert trigger is not None
        recommended: list[tuple[str, str]] | None = None
        out = []
        for spec in self.catalog.actions:
            if not _eligible(spec, ctx):
                continue
            if spec.item == "viewed":
                item = trigger.item_id
                if item is None or item in profile.bought or item in profile.dismissed:
                    continue
                views = int(profile.item_views.get(item, [0, 0.0])[0])
                why = f"viewed {_name(ctx.catalog, item)} {views} times without buying it"
            else:
                if recommended is None:
                    recs = ctx.recommendations() if ctx.recommendations else ()
                    recommended = [(r.item_id, r.reason) for r in recs if r.item_id not in profile.bought]
                if not recommended:
                    continue
                item, reason = recommended[0]
                why = f"recommended {_name(ctx.catalog, item)} ({reason})"
            entry = ctx.catalog.get(item)
            price = entry.price if entry is not None else 0.0
            out.append(
                _Option(
                    spec,
                    item,
                    why,
                    _coupon(spec, profile),
                    spec.value if spec.value is not None else max(price, 1.0),
                    decision_features(profile, ctx.now, item, price),
                )
            )
        return out

    def _decision(
        self,
        ctx: DecisionContext,
        candidate: Candidate,
        option: _Option,
        when: tuple[float, bool],
        scored: list[tuple[Candidate, _Option]],
        explored: bool,
    ) -> Decision:
        profile, spec = ctx.profile, option.spec
        at, moved = when
        assert ctx.trigger is not None
        channel = candidate.channel
        others = [c for c, _ in scored if c.channel != channel and c.action == spec.name]
        blocked_channels = "; ".join(
            f"{c.channel}: {', '.join(c.removed_by)}" for c in others if c.removed_by
        )
        stage = f"stage {profile.stage}" + (
            f", segment {profile.segment}" if profile.segment is not None else ""
        )
        reasons = (
            option.why_item,
            stage,
            f"expected uplift {candidate.uplift:+.1%} in conversion on {channel}"
            + (f" (not sent on {blocked_channels})" if blocked_channels else ""),
            *((self.model.explain(spec.type, option.x),) if self.model is not None else ()),
            *((f"coupon {option.offer:g} for a price-sensitive user",) if option.offer else ()),
            *((_answers(profile, channel),) if profile.responses.get(channel, (0, 0))[0] else ()),
            *(
                (f"held until {_local(at, profile.timezone, ctx.rules)}, the user's most active time of day",)
                if moved
                else (f"held until {_local(at, profile.timezone, ctx.rules)} (quiet hours)",)
                if at > ctx.now
                else ()
            ),
            *model_reasons(profile),
            *(("exploration: picked at random to keep learning",) if explored else ()),
        )
        return Decision(
            action_id=action_id(profile.canonical, spec.name, ctx.trigger.dedupe_key),
            action_type=spec.type,
            channel=channel,
            item_ids=(option.item,),
            score=candidate.score,
            reasons=reasons,
            created_at=ctx.now,
            send_at=at,
            expires_at=at + spec.expiry_hours * 3600.0,
            trigger_event_id=ctx.trigger.event_id,
            model_versions={"policy": self.version, **ctx.model_versions},
            action=spec.name,
            offer_value=option.offer,
            offer_cost=round(option.offer * (candidate.p_convert or 0.0), 4),
        )


def _answers(profile: Profile, channel: str) -> str:
    sent, answered = profile.responses[channel]
    return f"opened or clicked {answered} of {sent} messages on {channel}"


def _with_cooldown(rules: ContactRules, spec: ActionSpec) -> ContactRules:
    """The contact rules with the action's own cooldown (a contact-policy setting for it wins)."""
    if spec.cooldown_days is None or spec.name in rules.cooldown_s:
        return rules
    return replace(rules, cooldown_s={**rules.cooldown_s, spec.name: spec.cooldown_days * DAY})


def _coupon(spec: ActionSpec, profile: Profile) -> float:
    if spec.offer is None:
        return 0.0
    sensitivity = price_sensitivity(profile)
    return next((t.value for t in spec.offer.tiers if sensitivity >= t.min_sensitivity), 0.0)


def _eligible(spec: ActionSpec, ctx: DecisionContext) -> bool:
    e, profile, trigger = spec.eligibility, ctx.profile, ctx.trigger
    assert trigger is not None
    if trigger.type not in e.triggers:
        return False
    if e.stages is not None and profile.stage not in e.stages:
        return False
    if e.segments is not None and profile.segment not in e.segments:
        return False
    last_buy = last_purchase(profile)
    days_since = (ctx.now - last_buy) / DAY if last_buy is not None else None
    views = profile.item_views.get(trigger.item_id or "", [0, 0.0])[0] if trigger.item_id else 0.0
    return (
        e.churn_risk.holds(profile.churn_risk)
        and e.value_30d.holds(profile.value_30d)
        and e.purchases.holds(float(profile.purchases))
        and e.days_since_purchase.holds(days_since)
        and e.item_views.holds(float(views))
    )
