"""``consent``: ``users.consent`` -> validation -> the user's partition, through the user stream.

The topic is keyed by user and channel, so it is not co-partitioned with users: every valid
change hops to the partition of the user it belongs to, where :mod:`agents.users` applies it to
the profile (the newest change per channel wins, whatever the order of arrival). Invalid
records are dead-lettered; a tombstone (a compacted key deleted) changes nothing.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agents import users
from agents.dlq import each_event
from agents.runtime import Runtime
from models.identity import user_key
from schemas.dlq import Reason
from schemas.users import ConsentEvent
from schemas.validate import Rejected


async def handle(rt: Runtime, value: bytes | None) -> Rejected | None:
    """Route one consent change to its user; return the rejection if it was refused."""
    if value is None:
        return None
    try:
        change = ConsentEvent.model_validate_json(value)
    except ValidationError as exc:
        return Rejected(Reason.schema_violation, str(exc)[:1000])
    msg = {
        "kind": "consent",
        "canonical": user_key(change.user_id),
        "channel": change.channel,
        "granted": change.granted,
        "at": change.at.timestamp(),
    }
    await users.hop(rt, msg)
    return None


def register(app: Any, rt: Runtime) -> None:
    @app.agent(rt.consent, name="consent")
    async def consent(stream: Any) -> None:
        async def one(m: Any, value: bytes | None) -> Rejected | None:
            return await handle(rt, value)

        await each_event(stream, rt.dlq, one)
