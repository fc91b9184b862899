"""One step of a user's life: what happens to a profile when an event arrives or a due time fires.

This is the whole per-user business flow, pure: the worker's ``users`` agent and the offline
evaluator call the same functions, so a replay through either behaves the same.

Clock: event time throughout (``facts.ts``, the partition watermark).
"""

from __future__ import annotations

import random
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from models import lifecycle
from models.catalog import CatalogEntry
from models.clock import is_backfill
from models.decision import (
    ContactState,
    Decision,
    DecisionContext,
    RulePolicy,
    decide,
)
from models.due import DueIndex
from models.facts import EventFacts
from models.features import profile_features
from models.lifecycle import LifecyclePolicy, Transition
from models.profile import Applied, Profile, apply_event
from models.segmentation import Segmenter


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


@dataclass(frozen=True, slots=True)
class StepResult:
    outcome: Applied
    backfill: bool = False
    decision: Decision | None = None
    transitions: tuple[Transition, ...] = ()
    """Lifecycle stage changes this event caused (in order)."""
    sample: dict[str, float] | None = None
    """Features to send to the shared models' training stream, if this event contributes one."""
    moved: tuple[int | None, int] | None = None
    """(old, new) segment, if the user's segment changed."""


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


def reschedule(profile: Profile, due: DueIndex, watermark: float | None, cfg: StepConfig) -> list[Transition]:
    """Point the due-time index at the profile's next wake-up. Wake-ups the watermark has
    already passed are applied now, each at its own event time (so a watermark that jumps over
    several days yields the same transitions, at the same times, as one that crawls)."""
    changes: list[Transition] = []
    while True:
        at = lifecycle.next_wake(profile, cfg.lifecycle)
        if at is None or at == profile.due_at:
            return changes
        if watermark is not None and at <= watermark:
            change = lifecycle.update(profile, at, cfg.lifecycle)
            profile.due_at = None
            if change is None:  # cannot happen (next_wake and stage_at agree); never loop on it
                return changes
            changes.append(change)
            continue
        previous, profile.due_at = profile.due_at, at
        if previous is None or due.bucket(previous) != due.bucket(at):
            # a later time in the same bucket needs no new entry: the bucket fires after both
            due.schedule(profile.canonical, at)
        return changes


def on_event(
    profile: Profile,
    facts: EventFacts,
    *,
    watermark: float | None,
    due: DueIndex,
    cfg: StepConfig,
    catalog: Mapping[str, CatalogEntry] | None = None,
    segmenter: Segmenter | None = None,
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
    changes = []
    change = lifecycle.update(profile, profile.last_seen, cfg.lifecycle)
    if change is not None:
        changes.append(change)
    changes += reschedule(profile, due, watermark, cfg)
    x = profile_features(profile, profile.last_seen)
    moved = assign_segment(profile, x, segmenter)
    sample = None
    if profile.events >= cfg.train_min_events and (
        profile.trained_at is None or profile.last_seen - profile.trained_at >= cfg.train_interval_s
    ):
        profile.trained_at = profile.last_seen
        sample = x
    if is_backfill(facts.ts, watermark, cfg.backfill_max_age_s):
        return StepResult(outcome, backfill=True, transitions=tuple(changes), sample=sample, moved=moved)
    decision, contact = decide(
        DecisionContext(
            profile=profile,
            now=facts.ts,
            rng=seeded_rng(profile.canonical, facts.dedupe_key),
            contact=ContactState(profile.contact),
            catalog=catalog or {},
            trigger=facts,
            policy=cfg.rule,
        )
    )
    if decision is not None and cfg.send_enabled:
        profile.contact = dict(contact.last_sent)
    return StepResult(outcome, decision=decision, transitions=tuple(changes), sample=sample, moved=moved)


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
    segmenter: Segmenter | None = None,
) -> list[Transition] | None:
    """A due time fired for this user at ``watermark``: the stage changes it caused (the segment
    is re-scored too), or ``None`` if the hint was stale (the user was rescheduled since) and the
    profile is unchanged."""
    if profile.merged_into is not None or profile.due_at is None or profile.due_at > watermark:
        return None  # folded into a user (who has their own wake-ups), or a stale hint
    assign_segment(profile, profile_features(profile, watermark), segmenter)
    profile.due_at = None
    return reschedule(profile, due, watermark, cfg)


def on_merged(profile: Profile, watermark: float | None, due: DueIndex, cfg: StepConfig) -> list[Transition]:
    """An anonymous profile was folded into ``profile``: re-evaluate the stage at the newest
    event and point the due-time index at the merged profile's next wake-up."""
    if profile.last_seen is None:
        return []
    changes = []
    change = lifecycle.update(profile, profile.last_seen, cfg.lifecycle)
    if change is not None:
        changes.append(change)
    return changes + reschedule(profile, due, watermark, cfg)
