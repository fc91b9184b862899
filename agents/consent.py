"""``consent``: ``users.consent`` -> validation -> the user's partition (see :mod:`agents.routed`),
where the engine keeps the newest change per channel, whatever the order of arrival."""

from __future__ import annotations

from typing import Any

from agents import routed
from agents.runtime import Runtime
from models.engine import ConsentMsg
from models.identity import user_key
from schemas.users import ConsentEvent


def to_msg(change: ConsentEvent) -> ConsentMsg:
    return ConsentMsg(user_key(change.user_id), change.channel, change.granted, change.at.timestamp())


def register(app: Any, rt: Runtime) -> None:
    routed.register(app, rt, rt.consent, "consent", ConsentEvent, to_msg)
