"""Consent through the real broker and Redis: a revocation on users.consent reaches the user's
profile, and the user's next action goes to a channel they still consent to."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from schemas.actions import NextBestAction
from schemas.dlq import DeadLetter
from tests.integration.conftest import Deployment, consume, produce, profile, started_worker, wait_for

START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _view(uid: str, n: int, channel: str, item: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": f"{uid}-{n}",
        "type": "view",
        "channel": channel,
        "user_id": uid,
        "item_id": item,
        "occurred_at": at.isoformat(),
        "view": {"duration_s": 60, "progress": 0.3},
    }


async def test_a_revoked_channel_is_not_used_and_invalid_consent_goes_to_the_dlq(
    deployment: Deployment, redis_client: Any
) -> None:
    dep = deployment
    await started_worker(dep)
    revoke = {"user_id": "alice", "channel": "app", "granted": False, "at": START.isoformat()}
    await produce(
        dep.bootstrap,
        [
            (dep.topic("users.consent"), b"alice:app", orjson.dumps(revoke)),
            (dep.topic("users.consent"), b"bob:app", b'{"user_id": "bob", "channel": "app"}'),
        ],
    )

    async def revoked() -> bool | Any:
        got = await profile(redis_client, dep, "u:alice")
        return (got is not None and got["consent"] == {"app": [False, START.timestamp()]}) or got

    await wait_for(revoked, 60, "alice's revocation in her profile")
    events = []
    for uid in ("alice", "bob"):  # the same behaviour: most engaged on app, also seen on web
        at = START + timedelta(minutes=5)
        views = [("web", "c9")] + [("app", "c1")] * 3
        for n, (channel, item) in enumerate(views):
            payload = _view(uid, n, channel, item, at + timedelta(seconds=n))
            events.append((dep.ingress(channel, "view"), uid.encode(), orjson.dumps(payload)))
    await produce(dep.bootstrap, events)
    records = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=2, timeout=60)
    channels = {a.user_id: a.channel for a in (NextBestAction.model_validate_json(r.value) for r in records)}
    assert channels == {"alice": "web", "bob": "app"}
    dead = await consume(dep.bootstrap, dep.topic("events.dlq"), until=1, timeout=30)
    letter = DeadLetter.model_validate_json(dead[0].value)
    assert letter.reason == "schema_violation" and letter.topic == dep.topic("users.consent")
