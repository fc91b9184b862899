"""One step of a user's life: what happens to a profile when an event arrives or a due time fires.

The step of one profile, pure. The engine (:mod:`models.engine`) calls these functions for
every driver (the worker's agents, the offline evaluator), and adds what spans profiles and
messages: identity, forwarding, parking and merging, the watermark and erase.

Clock: event time throughout (``facts.ts``, the partition watermark).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from models import attribution, lifecycle, reach
from models import churn as churn_mod
from models.arbitration import LearnedPolicy
from models.catalog import CatalogEntry
from models.churn import ChurnModel, Labelled, LabelRules, ValueModel, churn_features
from models.clock import is_backfill
from models.contact import ContactRules, ContactState, Send
from models.decision import (
    Decision,
    DecisionContext,
    RulePolicy,
    Verdict,
    decide,
)
from models.due import DueIndex
from models.facts import EventFacts
from models.features import FEATURES, profile_features
from models.lifecycle import LifecyclePolicy, Transition
from models.profile import Applied, Profile, apply_consent, apply_event
from models.recommend import Recommendation, Recommender, recent_interactions
from models.segmentation import Segmenter
from models.uplift import UpliftModel
from schemas.action_catalog import ActionCatalog
from schemas.training import UpliftSample
from schemas.vocabulary import DAY


@dataclass(frozen=True, slots=True)
class StepConfig:
    dedupe_window_s: float = 7 * 86_400.0
    max_event_keys: int = 2_000
    lifecycle: LifecyclePolicy = field(default_factory=LifecyclePolicy)
    train_interval_s: float = 86_400.0
    """A user contributes a training sample to the shared models at most once per this much
    event time (on an applied event), so that heavy users do not dominate the training stream."""
    train_min_events: int = 5
    """Users with fewer events send no training samples: their rates are mostly noise."""
    backfill_max_age_s: float = 86_400.0
    send_enabled: bool = True
    """``False`` (no-send mode): decisions are computed but not recorded as contacts."""
    rule: RulePolicy = field(default_factory=RulePolicy)
    contact: ContactRules = field(default_factory=ContactRules)
    control_share: float = 0.0
    """Share of users in the global control group (decided and logged, never sent)."""
    holdouts: Mapping[str, float] = field(default_factory=dict)
    """action type -> share of users held out of it."""
    labels: LabelRules = field(default_factory=LabelRules)
    history: int = 20
    """How many of a user's recent items pair with a new interaction and seed recommendations."""
    actions: ActionCatalog | None = None
    """The action catalog: decide with the learned policy (:mod:`models.arbitration`); ``None``:
    with the foundation rule (``rule``)."""


INTERACTIONS = frozenset(("click", "view", "share", "purchase"))


@dataclass(frozen=True, slots=True)
class Scorers:
    """The latest snapshots of the shared models (any may be missing before it is trained)."""

    segmenter: Segmenter | None = None
    churn: ChurnModel | None = None
    value: ValueModel | None = None
    recommender: Recommender | None = None
    """Attached to the catalog by whoever serves it."""
    uplift: UpliftModel | None = None

    @property
    def versions(self) -> dict[str, str]:
        out = {}
        named = (
            ("segmentation", self.segmenter),
            ("churn", self.churn),
            ("value", self.value),
            ("similarity", self.recommender),
            ("uplift", self.uplift),
        )
        for name, model in named:
            if model is not None:
                out[name] = f"{name}-{model.n_learned}"
        return out


NO_MODELS = Scorers()


@dataclass(frozen=True, slots=True)
class Woken:
    """What a due time changed: stage transitions and snapshots whose labels became known."""

    transitions: tuple[Transition, ...] = ()
    labelled: tuple[Labelled, ...] = ()
    outcomes: tuple[UpliftSample, ...] = ()
    """Decision outcomes whose attribution window ended (see :mod:`models.attribution`)."""


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: Applied
    backfill: bool = False
    decision: Decision | None = None
    """The action to publish (the verdict's ``send``)."""
    verdict: Verdict | None = None
    """The whole decision, for the decision log (``None`` when nothing was decided)."""
    transitions: tuple[Transition, ...] = ()
    """Lifecycle stage changes this event caused (in order)."""
    sample: dict[str, float] | None = None
    """Features to send to the shared models' training stream, if this event contributes one."""
    moved: tuple[int | None, int] | None = None
    """(old, new) segment, if the user's segment changed."""
    labelled: tuple[Labelled, ...] = ()
    """Snapshots whose labels this event's watermark handed out, for the shared models to learn."""
    interaction: dict[str, Any] | None = None
    """What the shared similarity model learns from this event (with the user's recent items)."""
    outcomes: tuple[UpliftSample, ...] = ()
    """Decision outcomes this event settled (a conversion, or windows it closed), for the uplift model."""


class _LazyRandom(random.Random):
    """A ``random.Random`` seeded on first use: most decisions never draw, and seeding costs more
    than the rest of a foundation decision. Pickles as a plain, seeded ``random.Random``."""

    def __init__(self, seed: int) -> None:  # deliberately no super().__init__ until first use
        self._lazy_seed: int | None = seed

    def _materialize(self) -> None:
        if self._lazy_seed is not None:
            seed, self._lazy_seed = self._lazy_seed, None
            super().__init__(seed)

    def random(self) -> float:
        self._materialize()
        return super().random()

    def getrandbits(self, k: int) -> int:
        self._materialize()
        return super().getrandbits(k)

    def getstate(self) -> tuple[Any, ...]:
        self._materialize()
        return super().getstate()

    def __reduce__(self) -> tuple[Any, ...]:
        state = self.getstate()
        return random.Random, (), state


def seeded_rng(canonical: str, salt: str) -> random.Random:
    """The decision's random source: a function of the user and the trigger, so replays agree.

    Seeded with an integer (CRC-32 of both), and only when first drawn from.

    >>> a, b = seeded_rng("u:1", "app/e1"), seeded_rng("u:1", "app/e1")
    >>> a.random() == b.random() == random.Random(zlib.crc32(b"u:1|app/e1")).random()
    True
    """
    return _LazyRandom(zlib.crc32(f"{canonical}|{salt}".encode()))


def _next_tick(profile: Profile, rules: LabelRules) -> float | None:
    """The next daily churn tick (a UTC day boundary) while the user is recently active."""
    if profile.last_seen is None or profile.merged_into is not None:
        return None
    after = profile.scored_at if profile.scored_at is not None else profile.last_seen
    tick = (after // DAY + 1) * DAY
    return tick if tick - profile.last_seen <= rules.active_window_s else None


def next_wake(profile: Profile, cfg: StepConfig) -> float | None:
    """When silence next matters: a stage change, a daily churn tick, or a label coming due."""
    times = [
        t
        for t in (
            lifecycle.next_wake(profile, cfg.lifecycle),
            _next_tick(profile, cfg.labels),
            churn_mod.next_label_time(profile, cfg.labels),
            _window_end(profile),
        )
        if t is not None
    ]
    return min(times) if times else None


def _score(profile: Profile, now: float, x: dict[str, float], models: Scorers, cfg: StepConfig) -> None:
    """Score churn risk and value at ``now`` and keep the snapshot if the sampling policy allows."""
    risk = value = -1.0  # -1: no model yet (such snapshots still train, but are not evaluated)
    if models.churn is not None and models.churn.n_learned:
        risk, profile.churn_reasons = models.churn.assess(x)
        profile.churn_risk = round(risk, 4)
    if models.value is not None and models.value.n_learned:
        value = models.value.predict_one(x)
        profile.value_30d = round(value, 2)
    profile.scored_at = now
    churn_mod.snapshot(profile, now, x, risk, value, cfg.labels)


def _window_end(profile: Profile) -> float | None:
    """Just after the next attribution window ends (its outcome is then known)."""
    end = attribution.next_time(profile)
    return end + 1.0 if end is not None else None


def _wake(
    profile: Profile, at: float, cfg: StepConfig, models: Scorers
) -> tuple[Transition | None, list[Labelled], list[UpliftSample]]:
    change = lifecycle.update(profile, at, cfg.lifecycle)
    if at == _next_tick(profile, cfg.labels):
        _score(profile, at, churn_features(profile, at), models, cfg)
    return change, churn_mod.on_watermark(profile, at, cfg.labels), attribution.on_time(profile, at)


def reschedule(
    profile: Profile, due: DueIndex, watermark: float | None, cfg: StepConfig, models: Scorers = NO_MODELS
) -> Woken:
    """Point the due-time index at the profile's next wake-up. Wake-ups the watermark has
    already passed are applied now, each at its own event time (so a watermark that jumps over
    several days yields the same transitions, scores and labels, at the same times, as one that
    crawls)."""
    changes: list[Transition] = []
    labelled: list[Labelled] = []
    outcomes: list[UpliftSample] = []
    woke_at = None
    while True:
        at = next_wake(profile, cfg)
        if at is None or at == profile.due_at:
            return Woken(tuple(changes), tuple(labelled), tuple(outcomes))
        if watermark is not None and at <= watermark and at != woke_at:  # (never loop on one time)
            woke_at = at
            change, done, settled = _wake(profile, at, cfg, models)
            profile.due_at = None
            if change is not None:
                changes.append(change)
            labelled += done
            outcomes += settled
            continue
        previous, profile.due_at = profile.due_at, at
        if previous is None or due.bucket(previous) != due.bucket(at):
            # a later time in the same bucket needs no new entry: the bucket fires after both
            due.schedule(profile.canonical, at)
        return Woken(tuple(changes), tuple(labelled), tuple(outcomes))


def on_event(
    profile: Profile,
    facts: EventFacts,
    *,
    watermark: float | None,
    due: DueIndex,
    cfg: StepConfig,
    catalog: Mapping[str, CatalogEntry] | None = None,
    models: Scorers = NO_MODELS,
) -> StepResult:
    """Apply ``facts`` to ``profile`` (in place) and decide whether to act on it.

    Examples
    --------
    >>> p, idx = Profile("u:1"), DueIndex({}, partition=0)
    >>> views = [EventFacts(event_id=f"e{i}", type="view", channel="app", ts=float(i), item_id="c")
    ...          for i in range(3)]
    >>> [on_event(p, f, watermark=None, due=idx, cfg=StepConfig()).decision is not None for f in views]
    [False, False, True]
    """
    outcome = apply_event(
        profile,
        facts,
        dedupe_window_s=cfg.dedupe_window_s,
        max_event_keys=cfg.max_event_keys,
        catalog=catalog,
    )
    if outcome is not Applied.applied:
        return StepResult(outcome)
    assert profile.last_seen is not None
    outcomes = attribution.on_time(profile, facts.ts)
    if facts.type == "purchase":
        outcomes += attribution.on_purchase(profile, facts.item_id, facts.ts)
    churn_mod.on_activity(profile, facts.ts, facts.spend, cfg.labels)
    changes = []
    change = lifecycle.update(profile, profile.last_seen, cfg.lifecycle)
    if change is not None:
        changes.append(change)
    xc = churn_features(profile, profile.last_seen)
    _score(profile, profile.last_seen, xc, models, cfg)
    woken = reschedule(profile, due, watermark, cfg, models)
    changes += woken.transitions
    labelled = woken.labelled
    x = {f: xc[f] for f in FEATURES}
    moved = assign_segment(profile, x, models.segmenter)
    sample = None
    if profile.events >= cfg.train_min_events and (
        profile.trained_at is None or profile.last_seen - profile.trained_at >= cfg.train_interval_s
    ):
        profile.trained_at = profile.last_seen
        sample = x
    result = StepResult(
        outcome,
        transitions=tuple(changes),
        sample=sample,
        moved=moved,
        labelled=labelled,
        interaction=interaction_sample(profile, facts, cfg.history),
        outcomes=(*outcomes, *woken.outcomes),
    )
    if is_backfill(facts.ts, watermark, cfg.backfill_max_age_s):
        return replace(result, backfill=True)
    ctx = DecisionContext(
        profile=profile,
        now=facts.ts,
        rng=seeded_rng(profile.canonical, facts.dedupe_key),
        contact=_state(profile),
        rules=cfg.contact,
        consent=profile.consented,
        catalog=catalog or {},
        trigger=facts,
        policy=cfg.rule,
        predictions={
            k: v for k, v in (("churn", profile.churn_risk), ("value", profile.value_30d)) if v is not None
        },
        model_versions=models.versions,
        recommendations=_recommendations(profile, facts, cfg.history, models.recommender),
        control_share=cfg.control_share,
        holdouts=cfg.holdouts,
    )
    if cfg.actions is not None:
        verdict, exposure = LearnedPolicy(cfg.actions, models.uplift).decide(ctx)
    else:
        verdict, exposure = decide(ctx), None
    if cfg.send_enabled:
        _put(profile, verdict.contact)
        if exposure is not None:
            attribution.expose(profile, exposure)
        if verdict.outcome == "sent" and verdict.decision is not None:
            reach.note_sent(profile, verdict.decision.channel)
    logged = verdict if verdict.outcome != "none" else None
    return replace(result, decision=verdict.send, verdict=logged)


ANSWERS = frozenset(("opened", "clicked"))
"""Feedback kinds that show the user did not ignore a message."""


@dataclass(frozen=True, slots=True)
class ContactUpdate:
    """What a consent change or a sender's feedback did to a profile."""

    changed: bool
    cancelled: tuple[Send, ...] = ()
    """Sends withdrawn because consent was revoked before their send time (see
    :meth:`models.contact.ContactState.cancel`): each needs an ``action_cancelled``."""


def _state(profile: Profile) -> ContactState:
    return ContactState.from_profile(profile.contact, profile.ignored, profile.suppressed_until)


def _put(profile: Profile, state: ContactState) -> None:
    profile.contact, profile.ignored, profile.suppressed_until = state.to_profile()


def on_consent(profile: Profile, channel: str, granted: bool, at: float) -> ContactUpdate:
    """Apply a consent change (:func:`models.profile.apply_consent`); a revocation that stands
    withdraws the sends on that channel scheduled at or after it.

    >>> p = Profile("u:1", contact=[[5.0, "sms", "recommend_item", "a1", 9.0, 0]])
    >>> on_consent(p, "sms", False, 4.0).cancelled[0].action_id, p.contact
    ('a1', [])
    """
    changed = apply_consent(profile, channel, granted, at)
    if not changed or profile.consented.get(channel, True):
        return ContactUpdate(changed)
    state, cancelled = _state(profile).cancel(channel, at)
    _put(profile, state)
    return ContactUpdate(True, cancelled)


def on_erase(profile: Profile, at: float) -> tuple[Send, ...]:
    """The sends of ``profile`` still waiting for their send time when the user is erased at
    ``at`` (each needs an ``action_cancelled``; shadow sends were never published).

    >>> p = Profile("u:1", contact=[[5.0, "sms", "recommend_item", "a1", 9.0, 0]])
    >>> [s.action_id for s in on_erase(p, 4.0)], on_erase(p, 6.0)
    (['a1'], ())
    """
    return _state(profile).cancel_all(at)


def on_feedback(profile: Profile, kind: str, action_id: str, channel: str, at: float) -> ContactUpdate:
    """Apply a sender's feedback on ``action_id`` to the contact state.

    An open or a click answers the message (the user is not ignoring us: the count of ignored
    messages restarts; the channel's answer count and the hour of the answer are kept, and the
    decision's outcome will say it was answered); an unsubscribe revokes consent on that channel at ``at`` (as
    :func:`on_consent`); delivered and bounced change nothing (a bounced message stays
    unanswered and counts as ignored once it expires).

    >>> p = Profile("u:1", contact=[[0.0, "sms", "recommend_item", "a1", 10.0, 0]], ignored=2)
    >>> on_feedback(p, "opened", "a1", "sms", 5.0).changed, p.ignored, p.contact[0][-1]
    (True, 0, 1)
    >>> on_feedback(p, "unsubscribed", "a1", "sms", 6.0).changed, p.consented
    (True, {'sms': False})
    """
    if kind == "unsubscribed":
        return on_consent(profile, channel, False, at)
    if kind not in ANSWERS:
        return ContactUpdate(False)
    state = _state(profile)
    answered = state.answered(action_id)
    if answered is state:
        return ContactUpdate(False)
    _put(profile, answered)
    reach.note_answered(profile, channel, at)
    attribution.mark_answered(profile, action_id)
    return ContactUpdate(True)


def interaction_sample(profile: Profile, facts: EventFacts, n: int = 20) -> dict[str, Any] | None:
    """The similarity model's sample for an event on an item: the item, the kind of
    interaction and the user's ``n`` other recent items (so the learner keeps no per-user data)."""
    if facts.item_id is None or facts.type not in INTERACTIONS or facts.dismiss:
        return None
    history = recent_interactions(profile.item_views, profile.bought, n)
    return {
        "item": facts.item_id,
        "kind": facts.type,
        "ts": facts.ts,
        "progress": facts.progress,
        "segment": profile.segment,
        "channel": facts.channel,
        "recent": [[i, w] for i, w, _ in history if i != facts.item_id],
    }


def recommendations_for(
    profile: Profile,
    now: float,
    recommender: Recommender,
    n: int,
    channel: str | None,
    k: int | None = None,
) -> list[Recommendation]:
    """A user's recommendations as of ``now``: seeded by their ``n`` most recent items, without
    what they bought or dismissed. What the decision and ``GET /users/{id}/recommendations``
    both serve."""
    return recommender.recommend(
        recent_interactions(profile.item_views, profile.bought, n),
        now,
        exclude=profile.excluded,
        segment=profile.segment,
        channel=channel,
        k=k,
    )


def _recommendations(
    profile: Profile,
    facts: EventFacts,
    n: int,
    recommender: Recommender | None,
) -> Callable[[], list[Recommendation]] | None:
    """The user's recommendations, computed only if the decision asks for them."""
    if recommender is None:
        return None
    return lambda: recommendations_for(profile, facts.ts, recommender, n, facts.channel)


def assign_segment(
    profile: Profile, x: dict[str, float], segmenter: Segmenter | None
) -> tuple[int | None, int] | None:
    """Score ``profile`` (features ``x``) with the latest segmentation snapshot; (old, new) if it moved."""
    if segmenter is None or not segmenter.ready:
        return None
    new = segmenter.predict_one(x)
    if new == profile.segment:
        return None
    old, profile.segment = profile.segment, new
    return old, new


def on_due(
    profile: Profile,
    watermark: float,
    due: DueIndex,
    cfg: StepConfig,
    models: Scorers = NO_MODELS,
) -> Woken | None:
    """A due time fired for this user at ``watermark``: the stage changes, scores and labels it
    caused (the segment is re-scored too), or ``None`` if the hint was stale (the user was
    rescheduled since) and the profile is unchanged."""
    if profile.merged_into is not None or profile.due_at is None or profile.due_at > watermark:
        return None  # folded into a user (who has their own wake-ups), or a stale hint
    assign_segment(profile, profile_features(profile, watermark), models.segmenter)
    profile.due_at = None
    return reschedule(profile, due, watermark, cfg, models)


def on_merged(
    profile: Profile, watermark: float | None, due: DueIndex, cfg: StepConfig, models: Scorers = NO_MODELS
) -> Woken:
    """An anonymous profile was folded into ``profile``: re-evaluate the stage at the newest
    event and point the due-time index at the merged profile's next wake-up."""
    if profile.last_seen is None:
        return Woken()
    change = lifecycle.update(profile, profile.last_seen, cfg.lifecycle)
    woken = reschedule(profile, due, watermark, cfg, models)
    if change is None:
        return woken
    return Woken((change, *woken.transitions), woken.labelled, woken.outcomes)
