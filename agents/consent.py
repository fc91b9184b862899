"""``consent``: ``users.consent`` -> validation -> the user's partition (see :mod:`agents.routed`),
where the engine keeps the newest change per channel, whatever the order of arrival."""

from __future__ import annotations

from typing import Any

from agents import routed
from agents.runtime import Runtime
from models.engine import ConsentMsg
from schemas.users import ConsentEvent


def register(app: Any, rt: Runtime) -> None:
    routed.register(app, rt, rt.consent, "consent", ConsentEvent, ConsentMsg.of)
