"""Item similarity through the real broker and Redis: the learner learns the worker's
interaction samples, writes neighbour lists to Redis, and the web endpoints serve them."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from tests.integration.conftest import Deployment, produce, wait_for

FAST_SNAPSHOTS = {"NBA_SEGMENTS__SNAPSHOT_EVERY": "30", "NBA_SEGMENTS__SNAPSHOT_INTERVAL_S": "2"}
START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _event(uid: str, n: int, kind: str, item: str, at: datetime) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "event_id": f"{uid}-{n}",
        "type": kind,
        "channel": "app",
        "user_id": uid,
        "item_id": item,
        "occurred_at": at.isoformat(),
    }
    if kind == "purchase":
        payload["purchase"] = {"order_id": f"o-{uid}-{n}", "amount": 49.0, "currency": "CNY"}
    elif kind == "click":
        payload["click"] = {"target": "/recommendations", "dismiss": True}
    else:
        payload["view"] = {"duration_s": 300, "progress": 0.5}
    return payload


async def _get(url: str) -> Any:
    async with httpx.AsyncClient(timeout=5) as client:
        response = await client.get(url)
        return response.status_code, response.json()


async def test_items_bought_together_are_served_as_neighbours_and_recommended_unless_dismissed(
    deployment: Deployment,
) -> None:
    dep = deployment
    dep.extra.update(FAST_SNAPSHOTS)
    dep.create_topics()
    rng = random.Random(4)
    events = []
    for u in range(40):  # everyone buys course-a then course-b, with a few random views
        uid, at = f"buyer-{u:02d}", START + timedelta(minutes=10 * u)
        kinds = [("view", f"item-{rng.randrange(30):02d}") for _ in range(3)]
        kinds += [("purchase", "course-a"), ("purchase", "course-b")]
        for n, (kind, item) in enumerate(kinds):
            events.append((dep.ingress("app", kind), uid.encode(), _event(uid, n, kind, item, at)))
            at += timedelta(seconds=30)
    late = START + timedelta(hours=12)  # a new user who has bought only course-a
    for uid in ("newcomer", "dismisser"):
        bought = _event(uid, 0, "purchase", "course-a", late)
        events.append((dep.ingress("app", "purchase"), uid.encode(), bought))
    # the dismisser says 'not interested' in course-b
    dismissed = _event("dismisser", 1, "click", "course-b", late + timedelta(seconds=5))
    events.append((dep.ingress("app", "click"), b"dismisser", dismissed))
    worker = dep.worker()
    worker.start()
    await worker.ready()
    await produce(dep.bootstrap, [(t, k, orjson.dumps(v)) for t, k, v in events])

    async def similar_from_redis() -> bool | Any:
        status, body = await _get(f"{worker.url}/items/course-a/similar?k=3")
        ok = (
            status == 200
            and body["source"] == "redis"
            and body["similar"][:1]
            == [{"item_id": "course-b", "similarity": body["similar"][0]["similarity"]}]
        )
        return ok or body

    await wait_for(similar_from_redis, 120, "course-b as course-a's first neighbour, from Redis")

    async def recommended() -> bool | Any:
        status, body = await _get(f"{worker.url}/users/newcomer/recommendations?k=5")
        if status != 200 or not body["recommendations"]:
            return body
        ids = [r["item_id"] for r in body["recommendations"]]
        return (ids[0] == "course-b" and "course-a" not in ids) or body

    await wait_for(recommended, 60, "course-b recommended to a buyer of course-a, course-a excluded")
    status, body = await _get(f"{worker.url}/users/newcomer/recommendations")
    assert status == 200 and body["recommendations"][0]["reason"] == "similar to course-a"
    assert body["model"].startswith("similarity-") and body["as_of"] == late.timestamp()
    status, body = await _get(f"{worker.url}/users/dismisser/recommendations")
    assert status == 200 and body["as_of"] == late.timestamp() + 5
    ids = [r["item_id"] for r in body["recommendations"]]
    assert ids and "course-b" not in ids and "course-a" not in ids
    assert (await _get(f"{worker.url}/users/nobody/recommendations"))[0] == 404
    assert (await _get(f"{worker.url}/items/no-such-item/similar"))[0] == 404
