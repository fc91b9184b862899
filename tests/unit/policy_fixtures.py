"""Shared inputs of the learned policy's unit tests: a user who viewed item ``c1`` three times."""

from __future__ import annotations

from models.profile import Profile

DAY = 86_400.0
NOON = 12 * 3600.0 + 10 * DAY
"""12:00 UTC on day 10: the decision time of these tests."""


def viewer(**kw: object) -> Profile:
    """A retention-stage user on app, wechat and sms who viewed ``c1`` three times just now."""
    base: dict[str, object] = {
        "by_channel": {"app": 5, "wechat": 3, "sms": 1},
        "item_views": {"c1": [3, NOON - 60]},
        "timezone": "UTC",
        "stage": "retention",
        "events": 9,
    }
    return Profile("u:1", **(base | kw))  # type: ignore[arg-type]
