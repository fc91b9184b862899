"""A small, realistic demo stream: a catalog, and users browsing anonymously on one channel,
logging in on another, viewing, sharing and buying. Used by ``nba demo`` (``make run``) and tests.

Clock: events carry their own ``occurred_at`` (event time), starting at ``start`` and moving
forward a few minutes per event per user.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from schemas.catalog import CatalogItem, ItemKind

CATEGORIES = ("programming", "finance", "history", "psychology", "language", "design")


def demo_catalog(n_items: int = 24, seed: int = 7) -> list[CatalogItem]:
    rng = random.Random(seed)
    kinds = list(ItemKind)
    items = []
    for i in range(n_items):
        category = CATEGORIES[i % len(CATEGORIES)]
        kind = kinds[i % len(kinds)]
        items.append(
            CatalogItem(
                item_id=f"item-{i:03d}",
                kind=kind,
                title=f"{category.title()} {kind.value.replace('_', ' ')} #{i}",
                category=category,
                tags=[category, kind.value],
                price=round(rng.choice([9.9, 29.0, 49.0, 99.0, 199.0, 299.0]), 2),
            )
        )
    return items


@dataclass(frozen=True, slots=True)
class DemoEvent:
    topic_channel: str
    type: str
    key: str
    payload: dict[str, Any]


def demo_events(
    n_users: int = 50,
    events_per_user: int = 20,
    channels: tuple[str, ...] = ("app", "web", "wechat", "weibo", "douyin", "zhihu"),
    seed: int = 7,
    start: datetime | None = None,
    n_items: int = 24,
    tag: str = "",
) -> Iterator[DemoEvent]:
    """Events of ``n_users`` users, interleaved in event-time order per user.

    Every user starts anonymous on one channel (``anonymous_id`` only), then logs in on another
    (an event with both ids links them), then keeps going logged in. Each user returns to one
    favourite item repeatedly, so the foundation rule fires for many of them. A ``tag`` makes
    the user ids (and so the event ids) of one run distinct from another's.
    """
    rng = random.Random(seed)
    start = start or datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
    for u in range(n_users):
        prefix = f"{tag}-" if tag else ""
        user_id, anon_id = f"user-{prefix}{u:05d}", f"dev-{prefix}{u:05d}"
        browse_ch, login_ch = rng.sample(channels, 2)
        favourite = f"item-{rng.randrange(n_items):03d}"
        t = start + timedelta(minutes=rng.randrange(0, 600))
        for i in range(events_per_user):
            t += timedelta(minutes=rng.randrange(1, 30))
            anonymous = i < 3
            linking = i == 3
            channel = browse_ch if anonymous else login_ch
            roll = rng.random()
            item = favourite if rng.random() < 0.5 else f"item-{rng.randrange(n_items):03d}"
            payload: dict[str, Any] = {
                "event_id": f"{user_id}-{i}",
                "channel": channel,
                "occurred_at": t.isoformat(),
                "session_id": f"s-{u}-{i // 5}",
                "context": {"timezone": "Asia/Shanghai", "locale": "zh-CN", "device": channel},
            }
            if anonymous or linking:
                payload["anonymous_id"] = anon_id
            if not anonymous:
                payload["user_id"] = user_id
            if roll < 0.6:
                payload.update(
                    type="view",
                    item_id=item,
                    view={
                        "duration_s": rng.randrange(30, 1800),
                        "progress": round(rng.random(), 2),
                    },
                )
            elif roll < 0.8:
                payload.update(type="click", item_id=item, click={"target": f"/items/{item}"})
            elif roll < 0.9 or anonymous:
                payload.update(type="share", item_id=item, share={"platform": "wechat_moments"})
            else:
                payload.update(
                    type="purchase",
                    item_id=item,
                    purchase={
                        "order_id": f"o-{u}-{i}",
                        "amount": rng.choice([29.0, 99.0, 199.0]),
                        "currency": "CNY",
                    },
                )
            key = payload.get("anonymous_id") or payload["user_id"]
            yield DemoEvent(channel, payload["type"], key, payload)
