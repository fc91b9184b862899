"""``feedback``: ``marketing.feedback`` -> validation -> the user's partition, through the user stream.

Senders key feedback by user, but the topic is not co-partitioned with the user stream, so
every valid record hops to its user's partition, where :mod:`agents.users` applies it
(:func:`models.user_step.on_feedback`: an open or click answers the message, an unsubscribe
revokes consent on that channel). Invalid records are dead-lettered.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agents import users
from agents.dlq import each_event
from agents.runtime import Runtime
from models.identity import anon_key, user_key
from schemas.dlq import Reason
from schemas.feedback import Feedback
from schemas.validate import Rejected


async def handle(rt: Runtime, value: bytes | None) -> Rejected | None:
    """Route one feedback record to its user; return the rejection if it was refused."""
    if value is None:
        return None
    try:
        fb = Feedback.model_validate_json(value)
    except ValidationError as exc:
        return Rejected(Reason.schema_violation, str(exc)[:1000])
    msg = {
        "kind": "feedback",
        "canonical": user_key(fb.user_id) if fb.user_kind == "user" else anon_key(fb.user_id),
        "feedback": fb.kind.value,
        "action_id": fb.action_id,
        "channel": fb.channel,
        "at": fb.at.timestamp(),
    }
    await users.hop(rt, msg)
    return None


def register(app: Any, rt: Runtime) -> None:
    @app.agent(rt.feedback, name="feedback")
    async def feedback(stream: Any) -> None:
        async def one(m: Any, value: bytes | None) -> Rejected | None:
            return await handle(rt, value)

        await each_event(stream, rt.dlq, one)
