"""Feedback and the contact policy through the real broker and Redis: an action decided in the
user's quiet hours waits for their morning (``send_at``), an unsubscribe on marketing.feedback
revokes that channel in the profile and withdraws the waiting action with ``action_cancelled``,
and invalid feedback goes to the dead-letter topic."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.actions import NextBestAction
from schemas.dlq import DeadLetter
from tests.integration.conftest import (
    Deployment,
    consume,
    produce,
    profile,
    started_worker,
    view_records,
    wait_for,
)

EVENING = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)  # 22:30 in Shanghai (quiet hours 21:00-08:00)
MORNING = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # 08:00 the next day in Shanghai


async def test_quiet_hours_hold_an_action_and_an_unsubscribe_cancels_it(
    deployment: Deployment, redis_client: Any
) -> None:
    dep = deployment
    await started_worker(dep)
    views = view_records(dep, "carol", EVENING, context={"timezone": "Asia/Shanghai"})
    await produce(dep.bootstrap, views)
    [record] = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=1, timeout=60)
    action = NextBestAction.model_validate_json(record.value)
    assert (action.event, action.channel, action.send_at) == ("action", "app", MORNING)
    assert any("quiet hours" in r for r in action.reasons)

    unsubscribe = {
        "action_id": action.action_id,
        "user_id": "carol",
        "channel": "app",
        "kind": "unsubscribed",
        "at": (EVENING + timedelta(minutes=10)).isoformat(),
    }
    await produce(
        dep.bootstrap,
        [
            (dep.topic("marketing.feedback"), b"carol", orjson.dumps(unsubscribe)),
            (dep.topic("marketing.feedback"), b"dan", b'{"user_id": "dan", "kind": "opened"}'),
        ],
    )
    records = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=2, timeout=60)
    cancel = NextBestAction.model_validate_json(records[1].value)
    assert (cancel.event, cancel.action_id, cancel.channel) == ("action_cancelled", action.action_id, "app")

    async def revoked() -> bool | Any:
        got = await profile(redis_client, dep, "u:carol")
        return (
            got is not None and got["consent"].get("app", [None])[0] is False and got["contact"] == []
        ) or got

    await wait_for(revoked, 60, "carol's unsubscribe in her profile, her waiting send withdrawn")
    dead = await consume(dep.bootstrap, dep.topic("events.dlq"), until=1, timeout=30)
    letter = DeadLetter.model_validate_json(dead[0].value)
    assert letter.reason == "schema_violation" and letter.topic == dep.topic("marketing.feedback")
