"""The kill switch through nba.config on a running worker: switched on, decisions are logged as
no_action removed by ``paused`` and nothing reaches marketing.actions, also after a restart (the
worker reads the policy before it decides); switched off again, the next user is sent an
action, without a restart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from schemas.actions import NextBestAction
from schemas.decisions import DecisionRecord
from tests.integration.conftest import Deployment, consume, produce, started_worker, view_records, wait_for

START = datetime(2026, 3, 2, 9, tzinfo=UTC)  # 17:00 in Shanghai: no quiet hours


def _change(paused: bool) -> bytes:
    values = {"paused": paused}
    return orjson.dumps(
        {
            "section": "contact",
            "values": values,
            "changed_by": "sre",
            "reason": "test",
            "at": datetime.now(UTC),
        }
    )


async def test_the_kill_switch_stops_and_resumes_sending_without_a_restart(deployment: Deployment) -> None:
    dep = deployment
    worker = await started_worker(dep)

    async def kill_switch(expected: float) -> bool | Any:
        async with httpx.AsyncClient() as client:
            text = (await client.get(f"{worker.url}/metrics")).text
        line = next((x for x in text.splitlines() if x.startswith("nba_kill_switch ")), "")
        return line == f"nba_kill_switch {expected}" or line

    config = dep.topic("nba.config")
    await produce(dep.bootstrap, [(config, b"contact", _change(True))])
    await wait_for(lambda: kill_switch(1.0), 30, "the kill switch on")
    await produce(dep.bootstrap, view_records(dep, "paula", START))
    [first] = await consume(dep.bootstrap, dep.topic("marketing.decisions"), until=1, timeout=60)
    record = DecisionRecord.model_validate_json(first.value)
    assert record.outcome == "no_action" and record.candidates[0].removed_by == ["paused"]

    worker.stop()  # a restart must not decide under the environment's policy (not paused)
    await produce(dep.bootstrap, view_records(dep, "rita", START))
    worker.start()
    await worker.ready()
    logged = await consume(dep.bootstrap, dep.topic("marketing.decisions"), until=2, timeout=60)
    records = [DecisionRecord.model_validate_json(r.value) for r in logged]
    assert {r.user_id: r.outcome for r in records} == {"paula": "no_action", "rita": "no_action"}

    await produce(dep.bootstrap, [(config, b"contact", _change(False))])
    await wait_for(lambda: kill_switch(0.0), 30, "the kill switch off")
    await produce(dep.bootstrap, view_records(dep, "quinn", START))
    actions = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=2, timeout=10)
    assert [NextBestAction.model_validate_json(a.value).user_id for a in actions] == ["quinn"]
    worker_log = worker.log.read_text()
    assert "policy change applied: contact {'paused': True} by sre" in worker_log
