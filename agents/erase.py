"""``erase``: ``users.erase`` -> validation -> the user's partition, through the user stream.

Each valid request hops to its user's partition, where :mod:`agents.users` deletes everything
keyed by the user (and, from there, by every anonymous id merged into them) and records the
ids in the hashed suppression list. Invalid requests are dead-lettered.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agents import users
from agents.dlq import each_event
from agents.runtime import Runtime
from models.identity import user_key
from schemas.dlq import Reason
from schemas.users import EraseRequest
from schemas.validate import Rejected


async def handle(rt: Runtime, value: bytes | None) -> Rejected | None:
    """Route one erase request to its user; return the rejection if it was refused."""
    if value is None:
        return None
    try:
        request = EraseRequest.model_validate_json(value)
    except ValidationError as exc:
        return Rejected(Reason.schema_violation, str(exc)[:1000])
    await users.hop(
        rt, {"kind": "erase", "canonical": user_key(request.user_id), "at": request.at.timestamp()}
    )
    return None


def register(app: Any, rt: Runtime) -> None:
    @app.agent(rt.erase, name="erase")
    async def erase(stream: Any) -> None:
        async def one(m: Any, value: bytes | None) -> Rejected | None:
            return await handle(rt, value)

        await each_event(stream, rt.dlq, one)
