"""Smoke test of the simulator through Kafka: the world into the ingress topics, the worker turns
it into actions, simulated users answer on marketing.feedback and with purchases."""

from __future__ import annotations

import subprocess
import sys

import orjson

from schemas.feedback import Feedback
from tests.integration.conftest import ROOT, Deployment, consume, started_worker


async def test_world_through_kafka_worker_and_simulated_users(deployment: Deployment) -> None:
    dep = deployment
    await started_worker(dep)
    sim = subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli",
            "simulate",
            "--days",
            "14",
            "--users",
            "300",
            "--seed",
            "4",
            "--rate",
            "0",
        ],
        env=dep.env(),
        cwd=dep.tmp,
        capture_output=True,
        check=True,
    )
    summary = orjson.loads(sim.stdout[sim.stdout.index(b"{") :])
    assert summary["records"] > 1000
    truth = dep.tmp / "world.truth.json"
    assert truth.exists()
    actions = await consume(dep.bootstrap, dep.topic("marketing.actions"), until=1, timeout=60)
    assert actions, "the worker acted on the simulated world"
    answered = subprocess.run(
        [sys.executable, "-m", "app.cli", "respond", "--truth", str(truth), "--seconds", "8"],
        env=dep.env(),
        cwd=ROOT,
        capture_output=True,
        check=True,
    )
    counts = orjson.loads(answered.stdout.strip().splitlines()[-1])
    assert counts["actions"] >= len(actions) and counts["records"] >= counts["actions"]
    feedback = await consume(
        dep.bootstrap, dep.topic("marketing.feedback"), until=counts["actions"], timeout=30
    )
    kinds = {Feedback.model_validate_json(r.value).kind.value for r in feedback}
    assert "delivered" in kinds
