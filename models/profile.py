"""The live per-user profile, its exact-once application of events, and identity merges.

Promises
--------
* :func:`apply_event` applies each event at most once: the record of applied event keys lives
  *inside* the profile value, so storing the profile stores the dedupe record in the same write.
* Deduplication is exact within ``dedupe_window_s`` of event time before the user's newest event.
  An event older than that (its ``ts`` below :attr:`Profile.dedupe_floor`) cannot be proved new,
  so it is **not applied** and reported as ``late``.
* Everything per user is bounded: at most ``max_event_keys`` dedupe keys, ``MAX_ITEMS`` item
  counters (views, and the time of the last view or purchase; least recently used dropped
  first), ``MAX_BOUGHT`` bought items and ``MAX_DISMISSED`` dismissed ones.
* :func:`merge_into` folds an anonymous profile into a user's once, whatever the redeliveries.
* An event forwarded from an anonymous profile is *parked* at the user (:func:`park`) until that
  anonymous profile's merge has arrived, then applied (:func:`merge_into` returns it). A crash can
  make the merge arrive late (it is re-sent on every event that carries both ids); parking makes sure such
  an event is checked against the merged dedupe record instead of being counted twice.
"""

from __future__ import annotations

import bisect
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from models import decay
from models.catalog import CatalogEntry
from models.contact import Send
from models.facts import EventFacts
from schemas.vocabulary import DAY

MAX_ITEMS = 50
MAX_BOUGHT = 200
MAX_DISMISSED = 100
"""Dismissed items kept per user (the most recent dismissals)."""
MAX_PARKED = 10_000
MAX_AFFINITIES = 24
"""Category and tag affinities kept per user (the strongest, at the user's newest event)."""
MAX_DAYS = 64
MAX_PENDING = 16
"""Pending churn/value snapshots kept per user (see :mod:`models.churn`)."""
"""Distinct active days kept per user (the most recent)."""
COMPLETED = 0.9
"""A view with at least this progress counts as completed."""
ENGAGEMENT: dict[str, float] = {"view": 1.0, "click": 0.5, "share": 3.0, "purchase": 5.0}
"""Engagement weight of an event by type (a view adds its progress on top): the preferred channel
is the one with the most engagement over the last weeks, not the most events."""
AFFINITY_HALF_LIFE = (30 * DAY,)
ENGAGEMENT_HALF_LIFE = (30 * DAY,)


class Applied(StrEnum):
    applied = "applied"
    duplicate = "duplicate"
    late = "late"


class OpenExposure(NamedTuple):
    """A decision waiting for the end of its attribution window (:mod:`models.attribution`).
    Stored as the list of its fields in this order (the profile's ``exposures``), the stored form
    of the positional entries it replaced; entries stored before ``answered`` existed load with 0."""

    at: float
    """Send time: where the window opens."""
    until: float
    """Where the window ends."""
    decision_id: str
    item: str
    action_type: str
    """The action type sent (or logged for control), or ``none``."""
    channel: str
    offer: float
    group: str
    """``treatment``, ``control``, ``holdout`` or ``none``."""
    x: dict[str, float]
    """The features known at the decision."""
    decided: str
    decided_channel: str
    answered: int = 0
    """1 once the message was opened or clicked."""


# A pending churn/value snapshot (:mod:`models.churn`) is a flat list, so that thousands of them
# serialise and sit in memory small: [t, churn score at t, value estimate at t, spend since t,
# churn label, x], where the churn label is PENDING, RETAINED (activity came; sent to training at
# t + H) or SENT, and x is the features in CHURN_FEATURES order as base64 of float32 (about 170
# characters). Code reads and updates its slots by these names, never by number.
SNAP_T, SNAP_SCORE, SNAP_VALUE, SNAP_SPEND, SNAP_LABEL, SNAP_X = range(6)
PENDING, RETAINED, SENT = -1, 0, 2


@dataclass(slots=True)
class Profile:
    """Live state of one canonical user (see module docstring for the bounds).

    Times are event time, epoch seconds.
    """

    canonical: str
    first_seen: float | None = None
    last_seen: float | None = None
    events: int = 0
    by_type: dict[str, int] = field(default_factory=dict)
    by_channel: dict[str, int] = field(default_factory=dict)
    purchases: int = 0
    spend: float = 0.0
    first_purchase: float | None = None
    item_views: dict[str, list[float]] = field(default_factory=dict)
    """item -> [view count, last interaction ts] (a view or a purchase), the ``MAX_ITEMS`` most
    recently used. A purchase keeps its own time here without counting as a view, so an item
    bought without a prior view still has a time for the recommender's recency weights."""
    bought: list[str] = field(default_factory=list)
    dismissed: list[str] = field(default_factory=list)
    """Items the user said 'not interested' in (a dismissing click), oldest first."""
    timezone: str | None = None
    decayed: dict[str, list[float]] = field(default_factory=dict)
    """``all`` / ``t:<type>`` / ``c:<channel>`` -> decayed event counts ``[at, 1d, 7d, 30d]``;
    ``progress`` -> decayed sum of view progress (recent completion is it over ``t:view``)."""
    engagement: dict[str, list[float]] = field(default_factory=dict)
    """channel -> engagement-weighted decayed count ``[at, 30d]`` (see ``ENGAGEMENT``)."""
    affinity: dict[str, list[float]] = field(default_factory=dict)
    """``cat:<category>`` / ``tag:<tag>`` -> engagement-weighted decayed count ``[at, 30d]``."""
    progress_sum: float = 0.0
    progress_views: int = 0
    completed_views: int = 0
    hours: list[int] = field(default_factory=lambda: [0] * 24)
    """Events per local hour of day (the event's own timezone, else UTC)."""
    price_viewed: dict[str, int] = field(default_factory=dict)
    price_bought: dict[str, int] = field(default_factory=dict)
    days: list[int] = field(default_factory=list)
    """Distinct active days (UTC day numbers), ascending, the ``MAX_DAYS`` most recent."""
    engaged_at: float | None = None
    """First meaningful engagement: a purchase, a share, or a view at least half watched."""
    stage: str = "acquisition"
    stage_since: float | None = None
    segment: int | None = None
    trained_at: float | None = None
    """Event time of the user's last training sample for the shared models."""
    due_at: float | None = None
    """Event time at which the due-time index should wake this user, if scheduled."""
    consent: dict[str, list[Any]] = field(default_factory=dict)
    """channel -> [granted, event time of the change] (``users.consent``); see :func:`apply_consent`."""
    contact: list[list[Any]] = field(default_factory=list)
    """The sends that contact rules still need, oldest first (see :mod:`models.contact`)."""
    ignored: int = 0
    """Messages in a row that expired without an open or a click."""
    responses: dict[str, list[int]] = field(default_factory=dict)
    """channel -> [messages sent, messages answered (opened or clicked)] (see :mod:`models.reach`)."""
    answer_hours: list[int] = field(default_factory=lambda: [0] * 24)
    """Answered messages per local hour of the answer (as ``hours``)."""
    suppressed_until: float | None = None
    """No message before this event time (the user ignored too many in a row)."""
    seen: dict[str, float] = field(default_factory=dict)
    """dedupe key -> event ts, for events within the dedupe window."""
    dedupe_floor: float = float("-inf")
    churn_risk: float | None = None
    """Calibrated probability of no activity in the next H days, at the newest score."""
    churn_reasons: list[str] = field(default_factory=list)
    """The features that pushed ``churn_risk`` up most, in words."""
    value_30d: float | None = None
    """Expected spend over the next 30 days (base currency), at the newest score."""
    scored_at: float | None = None
    """Event time of the newest churn/value score (an event, or the daily tick while silent)."""
    pending: list[list[Any]] = field(default_factory=list)
    """Feature snapshots waiting for their churn and value labels (see :mod:`models.churn`)."""
    exposures: list[list[Any]] = field(default_factory=list)
    """Decisions waiting for the end of their attribution window (see :mod:`models.attribution`)."""
    merged_into: str | None = None
    """Set on an anonymous profile folded into a user: its events are forwarded there, and its
    state is kept as it was at the merge so that a redelivered link can re-send the merge."""
    merged_from: list[str] = field(default_factory=list)
    parked: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """anonymous canonical -> forwarded event facts waiting for that profile's merge."""

    def to_dict(self) -> dict[str, Any]:
        """A shallow dict (nested values are shared, not copied): serialise it, do not mutate it.

        Hand-written: ``dataclasses.asdict`` deep-copies and was ~12% of the worker's CPU.
        """
        d = {name: getattr(self, name) for name in _PROFILE_FIELDS}
        if d["dedupe_floor"] == float("-inf"):
            d["dedupe_floor"] = None
        return d

    def dumps(self) -> bytes:
        return orjson.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Profile:
        d = dict(d)
        if isinstance(d.get("contact"), dict):  # before the contact log: action type -> last send
            d["contact"] = [
                [at, "", kind, f"legacy:{kind}", at, 1] for kind, at in sorted(d["contact"].items())
            ]
        if d.get("dedupe_floor") is None:
            d["dedupe_floor"] = float("-inf")
        return cls(**d)

    @classmethod
    def loads(cls, raw: bytes) -> Profile:
        return cls.from_dict(orjson.loads(raw))

    @classmethod
    def from_public(cls, view: Mapping[str, Any]) -> Profile:
        """A profile from its :meth:`public_view` (the private fields at their defaults), for
        readers of the mirror that run profile code."""
        return cls.from_dict({name: view[name] for name in _PUBLIC_FIELDS if name in view})

    def public_view(self) -> dict[str, Any]:
        """What readers outside the worker see (Redis mirror, ``GET /users/{id}``): no dedupe
        record, plus the preferred channel."""
        view = {name: getattr(self, name) for name in _PUBLIC_FIELDS}
        view["preferred_channel"] = self.preferred_channel
        return view

    def public_json(self) -> bytes:
        return orjson.dumps(self.public_view())

    @property
    def preferred_channel(self) -> str | None:
        """The channel with the most engagement over the last weeks (30-day half-life, at the
        user's newest event); ties broken by name so the choice is deterministic."""
        ranked = self.channels_by_engagement()
        return ranked[0] if ranked else None

    def channels_by_engagement(self) -> list[str]:
        """Channels, most engaged first (then by event count, then by name)."""
        at = max((c[0] for c in self.engagement.values()), default=0.0)

        def key(ch: str) -> tuple[float, int, str]:
            counter = self.engagement.get(ch)
            value = decay.value_at(counter, at, 0, ENGAGEMENT_HALF_LIFE) if counter else 0.0
            return -value, -self.by_channel.get(ch, 0), ch

        return sorted(set(self.engagement) | set(self.by_channel), key=key)

    @property
    def consented(self) -> dict[str, bool]:
        """channel -> whether the user's newest consent change there granted contact."""
        return {channel: bool(granted) for channel, (granted, _) in self.consent.items()}

    @property
    def excluded(self) -> set[str]:
        """Items never to recommend to this user: bought or dismissed."""
        return {*self.bought, *self.dismissed}

    @property
    def dormant(self) -> bool:
        return self.stage == "dormant"


_PROFILE_FIELDS = tuple(f.name for f in fields(Profile))
_PRIVATE_FIELDS = frozenset({"seen", "dedupe_floor", "merged_from", "parked", "pending", "exposures"})
_PUBLIC_FIELDS = tuple(n for n in _PROFILE_FIELDS if n not in _PRIVATE_FIELDS)


_PRUNE_STEP_S = 3600.0


def _remember(profile: Profile, key: str, ts: float, window_s: float, max_keys: int) -> None:
    newest = ts if profile.last_seen is None else max(ts, profile.last_seen)
    profile.seen[key] = ts
    floor = max(profile.dedupe_floor, newest - window_s)
    if len(profile.seen) > max_keys:
        ordered = sorted(profile.seen.items(), key=lambda kv: (kv[1], kv[0]))
        excess = len(ordered) - max_keys
        # Everything at or below the newest dropped key's ts becomes unprovable: raise the floor
        # just past it so an older event is refused rather than risked as a double count.
        floor = max(floor, ordered[excess - 1][1])
    elif floor < profile.dedupe_floor + _PRUNE_STEP_S:
        return  # prune at most once per hour of floor movement: keys kept a little longer are harmless
    if floor > profile.dedupe_floor:
        profile.dedupe_floor = floor
        profile.seen = {k: v for k, v in profile.seen.items() if v > floor}


def apply_event(
    profile: Profile,
    facts: EventFacts,
    *,
    dedupe_window_s: float = 7 * 86_400,
    max_event_keys: int = 2_000,
    catalog: Mapping[str, CatalogEntry] | None = None,
) -> Applied:
    """Apply one event to ``profile`` in place, at most once.

    Examples
    --------
    >>> p = Profile("u:1")
    >>> e = EventFacts(event_id="e1", type="view", channel="app", ts=100.0, item_id="c1")
    >>> apply_event(p, e).value, apply_event(p, e).value, p.events
    ('applied', 'duplicate', 1)
    """
    key = facts.dedupe_key
    if key in profile.seen:
        return Applied.duplicate
    if facts.ts <= profile.dedupe_floor:
        return Applied.late
    _remember(profile, key, facts.ts, dedupe_window_s, max_event_keys)

    profile.events += 1
    profile.by_type[facts.type] = profile.by_type.get(facts.type, 0) + 1
    profile.by_channel[facts.channel] = profile.by_channel.get(facts.channel, 0) + 1
    profile.first_seen = facts.ts if profile.first_seen is None else min(profile.first_seen, facts.ts)
    profile.last_seen = facts.ts if profile.last_seen is None else max(profile.last_seen, facts.ts)
    _accumulate(profile, facts, (catalog or {}).get(facts.item_id or ""))
    if facts.timezone:
        profile.timezone = facts.timezone
    if facts.type == "purchase":
        profile.purchases += 1
        profile.spend += facts.spend
        if profile.first_purchase is None or facts.ts < profile.first_purchase:
            profile.first_purchase = facts.ts
        if facts.item_id:
            _add_recent(profile.bought, facts.item_id, MAX_BOUGHT)
            _touch_item(profile, facts.item_id, facts.ts, 0)
    elif facts.dismiss and facts.item_id:
        _add_recent(profile.dismissed, facts.item_id, MAX_DISMISSED)
    elif facts.type == "view" and facts.item_id:
        _touch_item(profile, facts.item_id, facts.ts, 1)
    return Applied.applied


def _touch_item(profile: Profile, item: str, ts: float, views: int) -> None:
    """Record an interaction with ``item`` at ``ts`` (``views`` of them count as views), keeping
    the ``MAX_ITEMS`` most recently used items."""
    count, last = profile.item_views.get(item, [0, ts])
    profile.item_views[item] = [count + views, max(last, ts)]
    if len(profile.item_views) > MAX_ITEMS:
        oldest = min(profile.item_views, key=lambda i: (profile.item_views[i][1], i))
        del profile.item_views[oldest]


def apply_consent(profile: Profile, channel: str, granted: bool, at: float) -> bool:
    """Record a consent change on ``channel`` at event time ``at``; ``True`` if it changed the
    profile. The newest change wins, whatever the order of arrival; at equal times a revocation
    wins, so a redelivered or reordered grant never overrides it.

    >>> p = Profile("u:1")
    >>> apply_consent(p, "sms", False, 20.0), apply_consent(p, "sms", True, 10.0)  # older grant
    (True, False)
    >>> apply_consent(p, "sms", True, 20.0), p.consented  # same time: the revocation stands
    (False, {'sms': False})
    """
    current = profile.consent.get(channel)
    if current is not None:
        was_granted, was_at = bool(current[0]), float(current[1])
        if at < was_at or (at == was_at and (granted or not was_granted)):
            return False
    profile.consent[channel] = [granted, at]
    return True


def _add_recent(items: list[str], item: str, keep: int) -> None:
    """Add ``item`` (once) to a list kept in order of first addition, the newest ``keep``."""
    if item not in items:
        items.append(item)
        del items[:-keep]


def _bump(counters: dict[str, list[float]], key: str, ts: float, w: float, hl: tuple[float, ...]) -> None:
    counter = counters.get(key)
    if counter is None:
        counters[key] = decay.new(ts, w, hl)
    else:
        decay.add(counter, ts, w, hl)


def local_hour(ts: float, tz: str | None) -> int:
    """The hour of day of ``ts`` in the IANA zone ``tz`` (UTC if unknown): how ``hours`` counts."""
    if tz:
        try:
            return datetime.fromtimestamp(ts, _zone(tz)).hour
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return int(ts % 86_400 // 3_600)


@functools.lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _accumulate(profile: Profile, facts: EventFacts, item: CatalogEntry | None) -> None:
    """The order-independent aggregates of one new event (sums, decayed sums, min, top-N sets)."""
    ts, etype = facts.ts, facts.type
    for key in ("all", f"t:{etype}", f"c:{facts.channel}"):
        _bump(profile.decayed, key, ts, 1.0, decay.HALF_LIVES_S)
    weight = 0.0 if facts.dismiss else ENGAGEMENT.get(etype, 0.0)  # 'not interested' is no taste
    if etype == "view":
        weight += facts.progress
        profile.progress_sum += facts.progress
        profile.progress_views += 1
        profile.completed_views += facts.progress >= COMPLETED
        _bump(profile.decayed, "progress", ts, facts.progress, decay.HALF_LIVES_S)
    _bump(profile.engagement, facts.channel, ts, weight, ENGAGEMENT_HALF_LIFE)
    if etype == "purchase" or etype == "share" or (etype == "view" and facts.progress >= 0.5):
        profile.engaged_at = ts if profile.engaged_at is None else min(profile.engaged_at, ts)
    profile.hours[local_hour(ts, facts.timezone)] += 1
    day = int(ts // 86_400)
    if day not in profile.days:
        bisect.insort(profile.days, day)
        del profile.days[:-MAX_DAYS]
    if item is not None:
        keys = [f"tag:{t}" for t in item.tags]
        if item.category:
            keys.append(f"cat:{item.category}")
        for key in keys:
            _bump(profile.affinity, key, ts, weight, AFFINITY_HALF_LIFE)
        _prune_affinity(profile)
        if etype == "view":
            profile.price_viewed[item.price_band] = profile.price_viewed.get(item.price_band, 0) + 1
        elif etype == "purchase":
            profile.price_bought[item.price_band] = profile.price_bought.get(item.price_band, 0) + 1


def _prune_affinity(profile: Profile) -> None:
    if len(profile.affinity) <= MAX_AFFINITIES:
        return
    at = max(c[0] for c in profile.affinity.values())
    ranked = sorted(
        profile.affinity,
        key=lambda k: (-decay.value_at(profile.affinity[k], at, 0, AFFINITY_HALF_LIFE), k),
    )
    for key in ranked[MAX_AFFINITIES:]:
        del profile.affinity[key]


def needs_merge_first(profile: Profile, via: str | None) -> bool:
    """``True`` if an event forwarded from ``via`` must wait for ``via``'s merge."""
    return via is not None and via not in profile.merged_from


def park(profile: Profile, via: str, facts: dict[str, Any]) -> bool:
    """Hold a forwarded event until ``via`` is merged; ``False`` if the bound is reached (dropped)."""
    if sum(len(v) for v in profile.parked.values()) >= MAX_PARKED:
        return False
    profile.parked.setdefault(via, []).append(facts)
    return True


def merge_into(target: Profile, source: Profile) -> bool:
    """Fold ``source`` (an anonymous profile) into ``target`` once; ``False`` if already merged.

    After a ``True``, apply :func:`take_parked` events of ``source`` to ``target``.

    Counts and sums add up (the two hold disjoint events, because routing sends each event to one
    profile only: see :mod:`models.identity`), times take min/max, and the dedupe records unite
    so a redelivered anonymous event is still recognised. The merged floor is the higher of the
    two (conservative: never double count).

    Examples
    --------
    >>> a, u = Profile("a:d1"), Profile("u:1")
    >>> _ = apply_event(a, EventFacts(event_id="e1", type="view", channel="web", ts=1.0, item_id="c"))
    >>> merge_into(u, a), merge_into(u, a), u.events
    (True, False, 1)
    """
    if source.canonical in target.merged_from or source.canonical == target.canonical:
        return False
    target.merged_from.append(source.canonical)
    target.events += source.events
    for k, v in source.by_type.items():
        target.by_type[k] = target.by_type.get(k, 0) + v
    for k, v in source.by_channel.items():
        target.by_channel[k] = target.by_channel.get(k, 0) + v
    target.purchases += source.purchases
    target.spend += source.spend
    for attr, pick in (("first_seen", min), ("first_purchase", min), ("last_seen", max)):
        a, b = getattr(target, attr), getattr(source, attr)
        setattr(target, attr, b if a is None else a if b is None else pick(a, b))
    for item, (count, last) in source.item_views.items():
        c0, l0 = target.item_views.get(item, [0, last])
        target.item_views[item] = [c0 + count, max(l0, last)]
    while len(target.item_views) > MAX_ITEMS:
        oldest = min(target.item_views, key=lambda i: (target.item_views[i][1], i))
        del target.item_views[oldest]
    for mine_l, theirs_l, keep in (
        (target.bought, source.bought, MAX_BOUGHT),
        (target.dismissed, source.dismissed, MAX_DISMISSED),
    ):
        for item in theirs_l:
            _add_recent(mine_l, item, keep)
    for channel, (granted, at) in source.consent.items():
        apply_consent(target, channel, bool(granted), float(at))
    target.timezone = target.timezone or source.timezone
    sends = [Send(*s) for s in target.contact]
    known = {s.action_id for s in sends}
    sends += [t for t in (Send(*s) for s in source.contact) if t.action_id not in known]
    target.contact = [list(s) for s in sorted(sends, key=lambda s: (s.at, s.action_id))]
    target.ignored = max(target.ignored, source.ignored)
    if source.suppressed_until is not None:
        target.suppressed_until = max(target.suppressed_until or 0.0, source.suppressed_until)
    for mine, theirs, hl in (
        (target.decayed, source.decayed, decay.HALF_LIVES_S),
        (target.engagement, source.engagement, ENGAGEMENT_HALF_LIFE),
        (target.affinity, source.affinity, AFFINITY_HALF_LIFE),
    ):
        for key, counter in theirs.items():
            mine[key] = decay.combine(mine[key], counter, hl) if key in mine else list(counter)
    _prune_affinity(target)
    target.progress_sum += source.progress_sum
    target.progress_views += source.progress_views
    target.completed_views += source.completed_views
    target.hours = [a + b for a, b in zip(target.hours, source.hours, strict=True)]
    target.answer_hours = [a + b for a, b in zip(target.answer_hours, source.answer_hours, strict=True)]
    for channel, (sent, answered) in source.responses.items():
        mine_r = target.responses.setdefault(channel, [0, 0])
        mine_r[0], mine_r[1] = mine_r[0] + sent, mine_r[1] + answered
    for mine_c, theirs_c in (
        (target.price_viewed, source.price_viewed),
        (target.price_bought, source.price_bought),
    ):
        for band, n in theirs_c.items():
            mine_c[band] = mine_c.get(band, 0) + n
    target.days = sorted(set(target.days) | set(source.days))[-MAX_DAYS:]
    if source.engaged_at is not None:
        target.engaged_at = (
            source.engaged_at if target.engaged_at is None else min(target.engaged_at, source.engaged_at)
        )
    # the anonymous id's pending snapshots go on being labelled by the user's activity
    target.pending = sorted(target.pending + [list(s) for s in source.pending], key=lambda s: s[SNAP_T])
    del target.pending[:-MAX_PENDING]
    exposures = [OpenExposure(*s) for s in target.exposures + source.exposures]
    target.exposures = [list(s) for s in sorted(exposures, key=lambda s: s.at)]
    del target.exposures[:-MAX_PENDING]
    target.seen.update(source.seen)
    target.dedupe_floor = max(target.dedupe_floor, source.dedupe_floor)
    target.seen = {k: v for k, v in target.seen.items() if v > target.dedupe_floor}
    return True


def take_parked(profile: Profile, via: str) -> list[EventFacts]:
    """The events parked for ``via`` (removed from the profile), oldest first."""
    return [EventFacts.from_dict(f) for f in profile.parked.pop(via, [])]
