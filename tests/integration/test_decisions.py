"""The decision log through the real broker: with a control group, every decision reaches
marketing.decisions with its candidates and outcome, and only the treated user's action reaches
marketing.actions."""

from __future__ import annotations

from datetime import UTC, datetime

from models.decision import group
from schemas.actions import NextBestAction
from schemas.decisions import DecisionRecord
from tests.integration.conftest import Deployment, consume, produce, started_worker, view_records

START = datetime(2026, 3, 2, 9, tzinfo=UTC)  # 17:00 in Shanghai: no quiet hours


def _first(arm: str, share: float) -> str:
    return next(f"user-{i}" for i in range(1000) if group(f"u:user-{i}", "recommend_item", share, {}) == arm)


async def test_control_users_are_logged_not_sent(deployment: Deployment) -> None:
    dep = deployment
    dep.extra["NBA_DECISION__CONTROL_SHARE"] = "0.5"
    await started_worker(dep)
    treated, control = _first("treatment", 0.5), _first("control", 0.5)
    events = view_records(dep, treated, START) + view_records(dep, control, START)
    await produce(dep.bootstrap, events)
    logged = await consume(dep.bootstrap, dep.topic("marketing.decisions"), until=2, timeout=60)
    records = {r.user_id: r for r in (DecisionRecord.model_validate_json(x.value) for x in logged)}
    assert {u: r.outcome for u, r in records.items()} == {treated: "sent", control: "control"}
    for r in records.values():
        assert r.propensity == 1.0 and r.candidates[0].channel == "app" and r.candidates[0].removed_by == []
        assert r.trigger_event_id == f"{r.user_id}-2" and r.action_id is not None
    actions = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=2, timeout=5)
    assert [NextBestAction.model_validate_json(a.value).user_id for a in actions] == [treated]
    assert NextBestAction.model_validate_json(actions[0].value).action_id == records[treated].action_id
