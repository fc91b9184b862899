"""The learned policy on a running worker: it decides over the action catalog and logs the exact
probability of its pick; a purchase within the attribution window reaches the learner as the
decision's outcome; a catalog change on nba.config takes effect without a restart, and a
malformed one is refused whole."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson

from app.action_catalog import load_file
from models.user_step import seeded_rng
from schemas.actions import NextBestAction
from schemas.decisions import DecisionRecord
from schemas.training import UpliftSample, parse_sample
from tests.integration.conftest import Deployment, consume, produce, started_worker, view_records, wait_for

START = datetime(2026, 3, 2, 9, tzinfo=UTC)  # 17:00 in Shanghai: no quiet hours


def _greedy_user(prefix: str) -> str:
    """A user whose third view does not draw exploration (the shipped 10%): the pick is the best."""
    return next(
        uid
        for i in range(100)
        if seeded_rng(f"u:{(uid := f'{prefix}-{i}')}", f"app/{uid}-2").random() >= load_file().exploration
    )


def _catalog_change(values: dict[str, Any]) -> bytes:
    change = {"section": "catalog", "values": values, "changed_by": "marketer", "reason": "test"}
    return orjson.dumps(change | {"at": datetime.now(UTC)})


async def test_learned_decisions_outcomes_and_catalog_changes(deployment: Deployment) -> None:
    dep = deployment
    dep.extra["NBA_DECISION__POLICY"] = "learned"
    worker = await started_worker(dep)
    ana = _greedy_user("ana")
    await produce(dep.bootstrap, view_records(dep, ana, START))
    [logged] = await consume(dep.bootstrap, dep.topic("marketing.decisions"), until=1, timeout=60)
    record = DecisionRecord.model_validate_json(logged.value)
    # a new user's third view: only the reminder is eligible (no recommendations yet), on app
    assert record.outcome == "sent" and record.action == "abandoned_view_reminder"
    assert record.policy.startswith("uplift-default-1") and not record.explored
    assert record.propensity == 0.9 + 0.1 / 2  # greedy, or explored among {the reminder, nothing}
    assert [(c.action, c.channel, c.removed_by) for c in record.candidates] == [
        ("abandoned_view_reminder", "app", [])
    ]
    [sent] = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=1, timeout=10)
    action = NextBestAction.model_validate_json(sent.value)
    assert action.action_id == record.action_id and action.action == "abandoned_view_reminder"

    purchase = {
        "event_id": f"{ana}-buy",
        "type": "purchase",
        "channel": "app",
        "user_id": ana,
        "item_id": "c1",
        "occurred_at": (START + timedelta(hours=2)).isoformat(),
        "purchase": {"order_id": "o1", "amount": 30.0, "currency": "CNY"},
    }
    await produce(dep.bootstrap, [(dep.ingress("app", "purchase"), ana.encode(), orjson.dumps(purchase))])

    async def outcome() -> bool | Any:
        samples = [  # every sample on the topic is one of the typed records of its contract
            parse_sample(r.value)
            for r in await consume(dep.bootstrap, dep.topic("nba.training"), until=10**6, timeout=3)
        ]
        uplift = [s for s in samples if isinstance(s, UpliftSample)]
        return any(s.decision_id == record.action_id and s.y is True for s in uplift) or uplift

    await wait_for(outcome, 60, "the decision's conversion on nba.training")

    # nba report reads the decision log and the outcomes from the topics
    out = dep.tmp / "report.json"
    cmd = [
        sys.executable,
        "-c",
        "from app.cli import main; main()",
        "report",
        "--out",
        str(dep.tmp / "r.html"),
    ]
    done = subprocess.run(
        [*cmd, "--json", str(out)], env=dep.env(), capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    figures = orjson.loads(out.read_bytes())
    assert figures["decisions"] == {"sent": 1} and figures["offpolicy"]["decisions"] == 1
    assert figures["offpolicy"]["logged"] == 1.0  # the one decision converted
    assert "<svg" in (dep.tmp / "r.html").read_text() or figures["uplift"][0]["uplift"] is None

    # marketing raises the bar: nothing clears it, so the next user gets nothing (bar exploration)
    changed = load_file().model_copy(update={"version": "raised-bar", "min_score": 1e9, "exploration": 0.0})
    config = dep.topic("nba.config")
    await produce(dep.bootstrap, [(config, b"catalog", _catalog_change(changed.model_dump(mode="json")))])
    await wait_for(
        lambda: _log_has(worker, "applied: catalog version raised-bar by marketer"), 30, "the change"
    )
    await produce(dep.bootstrap, view_records(dep, "ben", START))
    ben = await _decision_of(dep, "ben", until=2)
    assert ben.user_id == "ben" and ben.outcome == "no_action" and ben.policy.startswith("uplift-raised-bar")
    assert ben.candidates and all(c.removed_by == [] for c in ben.candidates)  # allowed, not worth it

    bad = {"version": "broken", "actions": [{"name": "a", "type": "spam_everyone"}]}
    await produce(dep.bootstrap, [(config, b"catalog", _catalog_change(bad))])

    async def rejected() -> bool | Any:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{worker.url}/metrics")).text
        return "nba_policy_rejected_total 1.0" in text or "not yet"

    await wait_for(rejected, 30, "the malformed catalog refused")
    await produce(dep.bootstrap, view_records(dep, "cleo", START))
    cleo = await _decision_of(dep, "cleo", until=3)
    assert cleo.user_id == "cleo" and cleo.policy.startswith("uplift-raised-bar")  # the previous catalog


async def _log_has(worker: Any, text: str) -> bool:
    return text in worker.log.read_text()


async def _decision_of(dep: Deployment, user: str, until: int) -> DecisionRecord:
    """``user``'s decision record (the topic's partitions are read in no particular order)."""
    logged = await consume(dep.bootstrap, dep.topic("marketing.decisions"), until=until, timeout=60)
    records = [DecisionRecord.model_validate_json(r.value) for r in logged]
    return next(r for r in records if r.user_id == user)
