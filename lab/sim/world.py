"""A deterministic world of users, items and channels, with the truth behind it.

Version ``world-v1`` (frozen: a change to the defaults needs a reason and results on both
versions). Clock: **event time**, simulated, from ``WorldConfig.start`` in minutes; every user
draws from their own seeded random source, so a seed determines the whole stream.

What is true in it (and written out as truth):

* a catalog of courses, e-books, audio columns and memberships in 8 categories, with series
  (part 1 -> part 2 -> part 3) whose next part is truly bought together with the previous;
* users drawn from five personas with their own channel mix, hours, weekly pattern, interests,
  price sensitivity, completion habit and churn hazard. The daily hazard depends on the persona,
  on how much the user completes, on disappointing purchases (bought, then barely viewed), on
  paying full price as a bargain hunter, and on marketing fatigue, not only on inactivity; a user
  churns at a moment of a day and may have been active earlier that day;
* identities: 40% browse anonymously on one channel before logging in on another (an event with
  both ids); 1% of those devices are later shared with another user (a conflicting link);
* consent: grants per channel at sign-up, daily revocations, unsubscribes after messages, and a
  few erase requests, after which the user is gone;
* delivery: 10% of events arrive late (minutes; 0.5% hours, offline apps) and 0.5% twice.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.vocabulary import DAY, HOUR, MINUTE

WORLD_VERSION = "world-v1"
CATEGORIES = ("programming", "finance", "history", "psychology", "language", "design", "business", "health")
TIMEZONES = (
    ("Asia/Shanghai", 8, 0.85),
    ("Asia/Tokyo", 9, 0.05),
    ("America/Los_Angeles", -8, 0.05),
    ("Europe/London", 0, 0.05),
)


@dataclass(frozen=True, slots=True)
class Persona:
    name: str
    weight: float
    sessions_per_day: float
    events_per_session: float
    channels: dict[str, float]
    peak_hour: float
    weekend: float
    focus: float
    """Share of interest mass on the user's top categories."""
    price_sensitivity: float
    purchase_p: float
    share_p: float
    completion: float
    base_hazard: float
    consent_p: float


PERSONAS: tuple[Persona, ...] = (
    Persona(
        "binge_learner",
        0.20,
        0.55,
        6,
        {"app": 0.6, "web": 0.2, "wechat": 0.15, "email": 0.05},
        21.0,
        1.3,
        0.85,
        0.3,
        0.035,
        0.03,
        0.75,
        0.0025,
        0.7,
    ),
    Persona(
        "casual_browser",
        0.30,
        0.15,
        3,
        {"douyin": 0.4, "weibo": 0.3, "web": 0.2, "app": 0.1},
        13.0,
        1.5,
        0.40,
        0.6,
        0.006,
        0.02,
        0.30,
        0.010,
        0.4,
    ),
    Persona(
        "career_upskiller",
        0.20,
        0.30,
        5,
        {"web": 0.4, "app": 0.3, "zhihu": 0.2, "email": 0.1},
        8.0,
        0.6,
        0.90,
        0.4,
        0.025,
        0.01,
        0.65,
        0.0035,
        0.6,
    ),
    Persona(
        "sharer",
        0.15,
        0.27,
        4,
        {"wechat": 0.5, "weibo": 0.3, "app": 0.2},
        20.0,
        1.2,
        0.50,
        0.5,
        0.015,
        0.25,
        0.45,
        0.006,
        0.5,
    ),
    Persona(
        "bargain_hunter",
        0.15,
        0.21,
        4,
        {"app": 0.3, "web": 0.3, "wechat": 0.2, "sms": 0.1, "email": 0.1},
        12.0,
        1.0,
        0.60,
        0.9,
        0.015,
        0.03,
        0.50,
        0.007,
        0.8,
    ),
)
PERSONA_BY_NAME = {p.name: p for p in PERSONAS}


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    kind: str
    title: str
    category: str
    price: float
    series_id: str | None = None
    series_part: int | None = None
    popularity: float = 1.0


@dataclass(frozen=True, slots=True)
class WorldConfig:
    days: int = 90
    users: int = 20_000
    seed: int = 7
    items: int = 240
    start: datetime = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
    anonymous_share: float = 0.40
    shared_device_share: float = 0.01
    late_share: float = 0.10
    duplicate_share: float = 0.005
    erase_share: float = 0.002
    signup_spread: float = 0.6
    """Users sign up uniformly over the first 60% of the days (20% are there from day 0)."""
    version: str = WORLD_VERSION


@dataclass(slots=True)
class UserState:
    index: int
    user_id: str
    persona: Persona
    rng: random.Random
    tz_name: str
    tz_offset_h: int
    interests: list[float]
    signup_day: int
    channels: list[str]
    channel_weights: list[float]
    anonymous_id: str | None = None
    anonymous_sessions: int = 0
    shared_with: str | None = None
    shared_device: str | None = None
    """The other user's device id this user logs in from (truth; ``shared_with`` is consumed)."""
    """A device id of another user this user will log in from once (a shared device)."""
    logged_in: bool = True
    seq: int = 0
    churn_at: float | None = None
    erased_at: float | None = None
    bought: set[str] = field(default_factory=set)
    completions: list[float] = field(default_factory=list)
    disappointments: int = 0
    full_price_paid_at: float = -1e18
    messages: list[float] = field(default_factory=list)
    consent: dict[str, bool] = field(default_factory=dict)

    @property
    def gone(self) -> bool:
        return self.churn_at is not None or self.erased_at is not None


@dataclass(order=True, slots=True)
class Emitted:
    """One record on its way out, ordered by delivery time."""

    delivered: float
    order: int
    topic: str = field(compare=False)
    key: str | None = field(compare=False)
    value: dict[str, Any] = field(compare=False)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    threshold, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= threshold:
            return k
        k += 1


def _pick(rng: random.Random, options: list[str], weights: list[float]) -> str:
    return rng.choices(options, weights)[0]


def build_catalog(n_items: int, rng: random.Random) -> list[Item]:
    """Items in categories; a third in series of three parts; one membership per category."""
    items: list[Item] = []
    per_cat = max(4, n_items // len(CATEGORIES))
    for cat in CATEGORIES:
        items.append(
            Item(
                f"m-{cat}",
                "membership",
                f"{cat.title()} membership",
                cat,
                float(rng.choice([299, 499, 699, 999])),
                popularity=1.5,
            )
        )
        n_series = per_cat // 9
        for s in range(n_series):
            sid = f"s-{cat}-{s}"
            kind = rng.choice(["course", "audio_column"])
            base = float(rng.choice([99, 149, 199, 299]))
            for part in (1, 2, 3):
                items.append(
                    Item(
                        f"{sid}-p{part}",
                        kind,
                        f"{cat.title()} {kind.replace('_', ' ')} {s} part {part}",
                        cat,
                        base,
                        sid,
                        part,
                        popularity=1.0 / part**0.5,
                    )
                )
        while sum(1 for i in items if i.category == cat) < per_cat:
            k = sum(1 for i in items if i.category == cat)
            kind = rng.choice(["course", "ebook", "ebook", "audio_column"])
            price = (
                float(rng.choice([19, 29, 39, 59])) if kind == "ebook" else float(rng.choice([49, 99, 199]))
            )
            items.append(
                Item(
                    f"i-{cat}-{k}",
                    kind,
                    f"{cat.title()} {kind.replace('_', ' ')} {k}",
                    cat,
                    price,
                    popularity=1.0 / (1 + k) ** 0.7 * 3,
                )
            )
    return items


class World:
    """The world, advanced one simulated day at a time."""

    def __init__(self, config: WorldConfig | None = None) -> None:
        self.config = cfg = config or WorldConfig()
        root = random.Random(cfg.seed)
        self.catalog = build_catalog(cfg.items, root)
        self.items_by_cat: dict[str, list[Item]] = {
            c: [i for i in self.catalog if i.category == c] for c in CATEGORIES
        }
        self.item_by_id = {i.item_id: i for i in self.catalog}
        self.start_ts = cfg.start.timestamp()
        self.users: list[UserState] = [self._new_user(i, root) for i in range(cfg.users)]
        self._wire_shared_devices(root)
        self._pending: list[Emitted] = []
        self._order = 0
        self.day = 0

    # ---- construction -------------------------------------------------------------------
    def _new_user(self, i: int, root: random.Random) -> UserState:
        cfg = self.config
        rng = random.Random(cfg.seed * 1_000_003 + i)
        persona = rng.choices(PERSONAS, [p.weight for p in PERSONAS])[0]
        tz = rng.choices(TIMEZONES, [t[2] for t in TIMEZONES])[0]
        top = rng.sample(range(len(CATEGORIES)), 2)
        interests = [(1 - persona.focus) / len(CATEGORIES)] * len(CATEGORIES)
        interests[top[0]] += persona.focus * 0.7
        interests[top[1]] += persona.focus * 0.3
        signup = 0 if rng.random() < 0.2 else int(rng.random() * cfg.days * cfg.signup_spread)
        channels = list(persona.channels)
        user = UserState(
            i,
            f"u{cfg.seed}-{i:06d}",
            persona,
            rng,
            tz[0],
            tz[1],
            interests,
            signup,
            channels,
            [persona.channels[c] for c in channels],
        )
        if rng.random() < cfg.anonymous_share:
            user.anonymous_id = f"d{cfg.seed}-{i:06d}"
            user.anonymous_sessions = rng.randint(1, 3)
            user.logged_in = False
        return user

    def _wire_shared_devices(self, root: random.Random) -> None:
        anon = [u for u in self.users if u.anonymous_id]
        for u in anon:
            if root.random() < self.config.shared_device_share:
                other = self.users[root.randrange(len(self.users))]
                if other is not u and other.shared_with is None:
                    other.shared_with = other.shared_device = u.anonymous_id

    # ---- behaviour ----------------------------------------------------------------------
    def _hazard(self, u: UserState, now: float) -> float:
        p = u.persona
        h = p.base_hazard
        recent = u.completions[-5:]
        if recent and sum(recent) / len(recent) < 0.3:
            h *= 1.8
        h *= 1 + 0.6 * min(u.disappointments, 3)
        if p.name == "bargain_hunter" and now - u.full_price_paid_at < 14 * DAY:
            h *= 1.7
        fatigue = sum(1 for t in u.messages if now - t < 7 * DAY)
        h *= 1 + 0.25 * max(0, fatigue - 1)
        return min(h, 0.5)

    def _event(
        self,
        u: UserState,
        ts: float,
        etype: str,
        channel: str,
        item: Item | None,
        link: bool = False,
        **blocks: Any,
    ) -> dict[str, Any]:
        """One event; ``link`` adds the anonymous id to a logged-in event (the login event)."""
        u.seq += 1
        value: dict[str, Any] = {
            "event_id": f"{u.user_id}-{u.seq}",
            "type": etype,
            "channel": channel,
            "occurred_at": _iso(ts),
            "session_id": f"{u.user_id}-s{int(ts // (30 * MINUTE))}",
            "context": {"timezone": u.tz_name, "locale": "zh-CN", "device": channel},
        }
        if u.logged_in:
            value["user_id"] = u.user_id
        if u.anonymous_id and (not u.logged_in or link):
            value["anonymous_id"] = u.anonymous_id
        if item is not None:
            value["item_id"] = item.item_id
        value.update(blocks)
        return value

    def _choose_item(self, u: UserState) -> Item:
        rng = u.rng
        # the next part of a series the user bought pulls strongly
        if u.bought and rng.random() < 0.45:
            nexts = []
            for iid in sorted(u.bought):  # a set: its order must not depend on hashing
                it = self.item_by_id[iid]
                if it.series_id and it.series_part and it.series_part < 3:
                    nxt = f"{it.series_id}-p{it.series_part + 1}"
                    if nxt not in u.bought:
                        nexts.append(self.item_by_id[nxt])
            if nexts:
                return rng.choice(nexts)
        cat = rng.choices(CATEGORIES, u.interests)[0]
        pool = self.items_by_cat[cat]
        return rng.choices(pool, [i.popularity for i in pool])[0]

    def _buy_p(self, u: UserState, item: Item) -> float:
        p = u.persona
        price_factor = math.exp(-p.price_sensitivity * item.price / 300)
        series = 1.0
        if (
            item.series_part
            and item.series_part > 1
            and f"{item.series_id}-p{item.series_part - 1}" in u.bought
        ):
            series = 6.0
        cat_interest = u.interests[CATEGORIES.index(item.category)] * len(CATEGORIES)
        return min(0.9, p.purchase_p * price_factor * series * (0.5 + 0.5 * cat_interest))

    def _session(
        self, u: UserState, start: float, out: list[tuple[float, str, str | None, dict[str, Any]]]
    ) -> None:
        p, rng = u.persona, u.rng
        channel = _pick(rng, u.channels, u.channel_weights)
        link = False
        if not u.logged_in:
            if u.anonymous_sessions <= 0:
                u.logged_in, link = True, True  # logs in now, on another channel than the browsing one
                others = [c for c in u.channels if c != channel] or ["app"]
                channel = rng.choice(others)
            else:
                u.anonymous_sessions -= 1
        if u.shared_with and u.logged_in and rng.random() < 0.2:
            value = self._event(u, start, "click", channel, None, click={"target": "/login"})
            value["anonymous_id"] = u.shared_with
            out.append((start, channel, u.shared_with, value))
            u.shared_with = None
        t = start
        n = 1 + _poisson(rng, p.events_per_session - 1)
        for k in range(n):
            t += rng.expovariate(1 / (3 * MINUTE))
            if u.churn_at is not None and t >= u.churn_at:
                return
            item = self._choose_item(u)
            roll = rng.random()
            first_link = link and k == 0
            if roll < 0.15:
                value = self._event(
                    u,
                    t,
                    "click",
                    channel,
                    None,
                    link=first_link,
                    click={"target": f"/category/{item.category}"},
                )
            else:
                progress = min(
                    1.0, max(0.0, rng.betavariate(2 * p.completion + 0.2, 2 * (1 - p.completion) + 0.2))
                )
                value = self._event(
                    u,
                    t,
                    "view",
                    channel,
                    item,
                    link=first_link,
                    view={"duration_s": round(progress * 1800, 1), "progress": round(progress, 3)},
                )
                u.completions.append(progress)
                if item.item_id in u.bought and progress < 0.1:
                    u.disappointments += 1
                still_here = u.churn_at is None or t + 30 < u.churn_at  # follow-ups come 10-30 s later
                if still_here and item.item_id not in u.bought and rng.random() < self._buy_p(u, item):
                    self._emit_purchase(u, t + 30, channel, item, out)
                elif still_here and rng.random() < p.share_p:
                    out.append(
                        (
                            t + 10,
                            channel,
                            None,
                            self._event(
                                u, t + 10, "share", channel, item, share={"platform": f"{channel}_moments"}
                            ),
                        )
                    )
            key = value.get("anonymous_id") or value.get("user_id")
            out.append((t, channel, key, value))

    def _emit_purchase(
        self,
        u: UserState,
        t: float,
        channel: str,
        item: Item,
        out: list[tuple[float, str, str | None, dict[str, Any]]],
    ) -> None:
        coupon = None
        amount = item.price
        if u.persona.price_sensitivity > 0.8 and u.rng.random() < 0.6:
            coupon, amount = "SAVE20", round(item.price * 0.8, 2)
        else:
            u.full_price_paid_at = t
        u.bought.add(item.item_id)
        value = self._event(
            u,
            t,
            "purchase",
            channel,
            item,
            purchase={
                "order_id": f"o-{u.user_id}-{u.seq}",
                "amount": amount,
                "currency": "CNY",
                "coupon": coupon,
            },
        )
        out.append((t, channel, value.get("anonymous_id") or value.get("user_id"), value))

    def user(self, user_id: str) -> UserState | None:
        """The user with this id (ids are ``u<seed>-<index>``)."""
        try:
            index = int(user_id.rsplit("-", 1)[1])
        except (IndexError, ValueError):
            return None
        return (
            self.users[index]
            if 0 <= index < len(self.users) and self.users[index].user_id == user_id
            else None
        )

    def inject_purchase(self, u: UserState, item_id: str, at: float, channel: str) -> bool:
        """A purchase caused by marketing (closed loop), at event time ``at``; ``False`` if it
        cannot happen (the user is gone by then, or already owns the item)."""
        item = self.item_by_id.get(item_id)
        if item is None or item_id in u.bought or u.gone:
            return False
        out: list[tuple[float, str, str | None, dict[str, Any]]] = []
        self._emit_purchase(u, at, channel, item, out)
        for ts, ch, _, value in out:
            self._deliver(
                ts,
                f"events.{ch}.purchase",
                value.get("anonymous_id") or value.get("user_id"),
                value,
                u.rng,
                disorder=False,
            )
        return True

    def deliver(self, at: float, topic: str, key: str | None, value: dict[str, Any]) -> None:
        """Queue an extra record (closed-loop feedback) for delivery at ``at``."""
        self._order += 1
        heapq.heappush(self._pending, Emitted(at, self._order, topic, key, value))

    # ---- the clock ----------------------------------------------------------------------
    def _deliver(
        self,
        ts: float,
        topic: str,
        key: str | None,
        value: dict[str, Any],
        rng: random.Random,
        disorder: bool = True,
    ) -> None:
        delay = 0.0
        if disorder:
            roll = rng.random()
            if roll < 0.005:
                delay = rng.uniform(1, 6) * HOUR
            elif roll < self.config.late_share:
                delay = rng.expovariate(1 / (2 * MINUTE))
        self._order += 1
        heapq.heappush(self._pending, Emitted(ts + delay, self._order, topic, key, value))
        if disorder and rng.random() < self.config.duplicate_share:
            self._order += 1
            heapq.heappush(
                self._pending, Emitted(ts + delay + rng.uniform(1, 600), self._order, topic, key, value)
            )

    def _user_day(self, u: UserState, day: int) -> None:
        day_start = self.start_ts + day * DAY
        if u.gone or day < u.signup_day:
            return
        rng, p = u.rng, u.persona
        if day == u.signup_day:
            for ch in sorted(set(u.channels) | {"email", "sms", "wechat"}):
                granted = ch in ("app", "web") or rng.random() < p.consent_p
                u.consent[ch] = granted
                self._deliver(
                    day_start + rng.uniform(0, HOUR),
                    "users.consent",
                    f"{u.user_id}:{ch}",
                    {
                        "user_id": u.user_id,
                        "channel": ch,
                        "granted": granted,
                        "at": _iso(day_start),
                        "source": "signup",
                    },
                    rng,
                    disorder=False,
                )
        elif rng.random() < self._hazard(u, day_start):
            u.churn_at = day_start + rng.uniform(0, DAY)
        for ch, granted in sorted(u.consent.items()):
            if granted and rng.random() < 0.001:
                u.consent[ch] = False
                at = day_start + rng.uniform(0, DAY)
                self._deliver(
                    at,
                    "users.consent",
                    f"{u.user_id}:{ch}",
                    {
                        "user_id": u.user_id,
                        "channel": ch,
                        "granted": False,
                        "at": _iso(at),
                        "source": "account",
                    },
                    rng,
                    disorder=False,
                )
        if rng.random() < self.config.erase_share / max(1, self.config.days):
            u.erased_at = day_start + rng.uniform(0, DAY)
            self._deliver(
                u.erased_at,
                "users.erase",
                u.user_id,
                {"request_id": f"erase-{u.user_id}", "user_id": u.user_id, "at": _iso(u.erased_at)},
                rng,
                disorder=False,
            )
            return
        weekday = (self.config.start + timedelta(days=day)).weekday()
        rate = p.sessions_per_day * (p.weekend if weekday >= 5 else 1.0)
        out: list[tuple[float, str, str | None, dict[str, Any]]] = []
        for _ in range(_poisson(rng, rate)):
            local_hour = (rng.gauss(p.peak_hour, 2.5)) % 24
            start = day_start + ((local_hour - u.tz_offset_h) % 24) * HOUR
            if u.churn_at is not None and start >= u.churn_at:
                continue
            self._session(u, start, out)
        for ts, channel, _, value in out:
            # the ingress key rule: anonymous id if present, else user id
            key = value.get("anonymous_id") or value.get("user_id")
            self._deliver(ts, f"events.{channel}.{value['type']}", key, value, rng)

    def advance(self) -> list[Emitted]:
        """Simulate the next day; return every record delivered by its end, in delivery order."""
        for u in self.users:
            self._user_day(u, self.day)
        self.day += 1
        horizon = self.start_ts + self.day * DAY
        if self.day >= self.config.days:
            horizon = float("inf")
        out = []
        while self._pending and self._pending[0].delivered < horizon:
            out.append(heapq.heappop(self._pending))
        return out

    def run(self) -> Iterator[Emitted]:
        while self.day < self.config.days:
            yield from self.advance()

    # ---- truth --------------------------------------------------------------------------
    def truth(self) -> dict[str, Any]:
        users = {}
        for u in self.users:
            users[u.user_id] = {
                "persona": u.persona.name,
                "churn_at": _iso(u.churn_at) if u.churn_at is not None else None,
                "erased_at": _iso(u.erased_at) if u.erased_at is not None else None,
                "signup_day": u.signup_day,
                "anonymous_ids": [u.anonymous_id] if u.anonymous_id else [],
                "shared_device": u.shared_device,
                "timezone": u.tz_name,
            }
        affinity = []
        for it in self.catalog:
            if it.series_id and it.series_part and it.series_part < 3:
                affinity.append(
                    {"a": it.item_id, "b": f"{it.series_id}-p{it.series_part + 1}", "kind": "series_next"}
                )
        return {
            "version": self.config.version,
            "config": {
                f: (v.isoformat() if isinstance(v, datetime) else v)
                for f, v in ((f, getattr(self.config, f)) for f in self.config.__dataclass_fields__)
            },
            "users": users,
            "item_affinity": affinity,
            "catalog": [
                {
                    "item_id": i.item_id,
                    "kind": i.kind,
                    "title": i.title,
                    "category": i.category,
                    "price": i.price,
                    "series_id": i.series_id,
                    "series_part": i.series_part,
                }
                for i in self.catalog
            ],
        }
