"""The closed loop through Kafka (a smoke test, not the measurement): simulated users read
``marketing.actions`` and answer on ``marketing.feedback`` and with ordinary purchase events.

Each answer is a pure function of the action (:func:`respond`, seeded by the ``action_id``), the
user's persona from the simulator's truth and the :class:`~lab.sim.closed_loop.ResponseModel`,
so the same actions always get the same answers.
"""

from __future__ import annotations

import asyncio
import random
import time
from datetime import timedelta
from typing import Any

import orjson

from lab.sim.closed_loop import ResponseModel
from lab.sim.world import TIMEZONES
from schemas.actions import NextBestAction


def respond(
    action: NextBestAction, persona: str | None, model: ResponseModel, tz_offset_h: int = 8
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(topic, key, value)`` records a simulated user sends back for one action; the user's
    local hour at sending (from ``tz_offset_h``) changes their response as in the closed loop."""
    if persona is None or action.event != "action" or action.user_kind != "user":
        return []
    rng = random.Random(f"respond|{action.action_id}")
    t = action.send_at or action.created_at

    def at(delta: timedelta) -> str:
        return (t + delta).isoformat().replace("+00:00", "Z")

    def fb(kind: str, delta: timedelta) -> tuple[str, str, dict[str, Any]]:
        return (
            "marketing.feedback",
            action.user_id,
            {
                "action_id": action.action_id,
                "user_id": action.user_id,
                "channel": action.channel,
                "kind": kind,
                "at": at(delta),
            },
        )

    out = [fb("delivered", timedelta(seconds=1))]
    if rng.random() < model.open_p.get(action.channel, 0.2):
        out.append(fb("opened", timedelta(minutes=rng.uniform(1, 360))))
    if rng.random() < model.unsubscribe_p:
        out.append(fb("unsubscribed", timedelta(minutes=rng.uniform(1, 60))))
    offer = action.offer.value if action.offer else 0.0
    action_type = action.action_type if action.action_type in model.action_factor else "recommend_item"
    local_hour = (t.hour + t.minute / 60 + tz_offset_h) % 24
    if action.item_ids and rng.random() < model.p_extra(
        persona, action_type, action.channel, offer, local_hour
    ):
        item = action.item_ids[0]
        out.append(
            (
                f"events.{action.channel}.purchase",
                action.user_id,
                {
                    "event_id": f"resp-{action.action_id}",
                    "type": "purchase",
                    "channel": action.channel,
                    "user_id": action.user_id,
                    "item_id": item,
                    "occurred_at": at(timedelta(hours=rng.uniform(1, 48))),
                    "purchase": {"order_id": f"resp-{action.action_id}", "amount": 0.0, "currency": "CNY"},
                },
            )
        )
    return out


async def run_responder(
    consumer: Any,
    producer: Any,
    prefix: str,
    users: dict[str, tuple[str, int]],
    seconds: float,
    model: ResponseModel | None = None,
) -> dict[str, int]:
    """Answer every action read within ``seconds`` (wall time); return counts."""
    model = model or ResponseModel()
    counts = {"actions": 0, "records": 0}
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            for r in records:
                action = NextBestAction.model_validate_json(r.value)
                counts["actions"] += 1
                persona, tz_offset = users.get(action.user_id, (None, 8))
                for topic, key, value in respond(action, persona, model, tz_offset):
                    await producer.send(prefix + topic, key=key.encode(), value=orjson.dumps(value))
                    counts["records"] += 1
        await asyncio.sleep(0)
    await producer.flush()
    return counts


def users_from_truth(truth: dict[str, Any]) -> dict[str, tuple[str, int]]:
    """user id -> (persona, UTC offset in hours of their timezone)."""
    offsets = {name: offset for name, offset, _ in TIMEZONES}
    return {uid: (u["persona"], offsets.get(u.get("timezone"), 8)) for uid, u in truth["users"].items()}
