"""``erase``: ``users.erase`` -> validation -> the user's partition (see :mod:`agents.routed`),
where :mod:`agents.users` deletes everything keyed by the user (and, from there, by every
anonymous id merged into them) and records the ids in the hashed suppression list."""

from __future__ import annotations

from typing import Any

from agents import routed
from agents.runtime import Runtime
from models.engine import EraseMsg
from schemas.users import EraseRequest


def register(app: Any, rt: Runtime) -> None:
    routed.register(app, rt, rt.erase, "erase", EraseRequest, EraseMsg.of)
