"""Agents that validate a record of a topic not partitioned by user and route it to its user.

``users.consent``, ``marketing.feedback`` and ``users.erase`` are keyed by user but are not
co-partitioned with the user stream (and their producers own the partitioning), so each valid
record hops to the partition of the user it belongs to, where :mod:`agents.users` applies it.
An invalid record goes to the dead-letter topic (``schema_violation``); a tombstone (a deleted
compacted key) changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from agents import users
from agents.dlq import each_event
from agents.runtime import Runtime
from models.engine import UserMsg
from schemas.dlq import Reason
from schemas.validate import Rejected


async def route(
    rt: Runtime, value: bytes | None, contract: type[BaseModel], to_msg: Callable[[Any], UserMsg]
) -> Rejected | None:
    """Validate one record against ``contract`` and hop ``to_msg(record)`` to its user; return
    the rejection if it was refused."""
    if value is None:
        return None
    try:
        record = contract.model_validate_json(value)
    except ValidationError as exc:
        return Rejected(Reason.schema_violation, str(exc)[:1000])
    await users.hop(rt, to_msg(record))
    return None


def register(
    app: Any,
    rt: Runtime,
    topic: Any,
    name: str,
    contract: type[BaseModel],
    to_msg: Callable[[Any], UserMsg],
) -> None:
    """Attach the agent ``name`` that routes ``topic``'s records (see :func:`route`)."""

    async def agent(stream: Any) -> None:
        async def one(m: Any, value: bytes | None) -> Rejected | None:
            return await route(rt, value, contract, to_msg)

        await each_event(stream, rt.dlq, one)

    app.agent(topic, name=name)(agent)
