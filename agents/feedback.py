"""``feedback``: ``marketing.feedback`` -> validation -> the user's partition (see
:mod:`agents.routed`), where :mod:`agents.users` applies it
(:func:`models.user_step.on_feedback`: an open or click answers the message, an unsubscribe
revokes consent on that channel)."""

from __future__ import annotations

from typing import Any

from agents import routed
from agents.runtime import Runtime
from models.engine import FeedbackMsg
from schemas.feedback import Feedback


def register(app: Any, rt: Runtime) -> None:
    routed.register(app, rt, rt.feedback, "feedback", Feedback, FeedbackMsg.of)
