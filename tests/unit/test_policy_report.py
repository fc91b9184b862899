"""nba report's figures from a decision log: uplift rows, and off-policy estimates that recover
each action's known conversion from a uniformly logged log."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from app.action_catalog import load
from lab.policy_report import build, render_html
from schemas.decisions import Candidate, DecisionRecord
from schemas.training import UpliftSample

CATALOG_YAML = (
    "version: t\nactions:\n  - {name: remind, type: abandoned_view_reminder, item: viewed}\n"
    "  - {name: recommend, type: recommend_item}\n"
)
CATALOG = load(CATALOG_YAML)
RATE = {"remind": 0.30, "recommend": 0.10, None: 0.05}


def _log(n: int, seed: int = 3) -> tuple[list[DecisionRecord], list[UpliftSample]]:
    rng, records, outcomes = random.Random(seed), [], []
    at = datetime(2026, 3, 2, tzinfo=UTC)
    candidates = [
        Candidate(
            action_type="recommend_item",
            action="recommend",
            channel="app",
            score=1.0,
            uplift=0.05,
            p_convert=0.1,
        ),
        Candidate(
            action_type="abandoned_view_reminder",
            action="remind",
            channel="app",
            score=0.5,
            uplift=0.2,
            p_convert=0.25,
        ),
    ]
    for i in range(n):
        pick = rng.choice([None, "recommend", "remind"])  # a uniform logging policy
        control = rng.random() < 0.2
        record = DecisionRecord(
            decision_id=f"d{i}",
            user_id=f"u{i}",
            decided_at=at,
            outcome="control" if control and pick else ("sent" if pick else "no_action"),
            action_id=f"d{i}" if pick else None,
            action=pick,
            channel="app" if pick else None,
            candidates=candidates,
            propensity=1 / 3,
            explored=True,
            policy="uplift-t-1",
        )
        treated = record.outcome == "sent"
        y = rng.random() < (RATE[pick] if treated else RATE[None])
        group = {"sent": "treatment", "control": "control", "no_action": "none"}[record.outcome]
        decided = {"recommend": "recommend_item", "remind": "abandoned_view_reminder"}.get(pick or "", "none")
        records.append(record)
        outcomes.append(
            UpliftSample(
                x={},
                at=0.0,
                decision_id=f"d{i}",
                y=y,
                group=group,  # type: ignore[arg-type]
                decided=decided,
                decided_channel="app",
                segment=i % 2,
            )
        )
    return records, outcomes


def test_the_report_recovers_each_actions_conversion_off_policy_and_measures_uplift() -> None:
    records, outcomes = _log(9000)
    figures = build(records, outcomes, CATALOG)
    assert figures["decisions"]["control"] > 0 and figures["outcomes"] == 9000
    ope = figures["offpolicy"]
    for name, truth in (
        ("only remind", RATE["remind"]),
        ("only recommend", RATE["recommend"]),
        ("nothing", RATE[None]),
    ):
        _, low, high = ope[name]["dr"]
        assert low <= truth <= high, (name, ope[name])
    assert ope["rule"]["dr"] == ope["only remind"]["dr"]  # the viewed-item action is the rule
    action = {r["value"]: r for r in figures["uplift"] if r["dimension"] == "action"}
    low, high = action["abandoned_view_reminder"]["ci95"]
    assert low <= RATE["remind"] - RATE[None] <= high
    page = render_html(figures)
    assert page.count("<svg") == 3 and "only remind" in page


def test_nba_evaluate_adds_the_off_policy_estimates_of_a_decision_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import orjson
    from click.testing import CliRunner

    from app.cli import main
    from lab.sim.output import write_jsonl
    from lab.sim.world import World, WorldConfig

    records, outcomes = _log(3000)
    decisions, results, log = tmp_path / "d.jsonl", tmp_path / "o.jsonl", tmp_path / "w.jsonl"
    decisions.write_text("\n".join(r.model_dump_json() for r in records))
    results.write_bytes(b"\n".join(o.model_dump_json().encode() for o in outcomes))
    write_jsonl(World(WorldConfig(days=3, users=50, seed=1)), log)
    report = tmp_path / "r.json"
    args = [
        "evaluate",
        str(log),
        "--decisions",
        str(decisions),
        "--outcomes",
        str(results),
        "--json",
        str(report),
    ]
    catalog = tmp_path / "actions.yaml"
    catalog.write_text(CATALOG_YAML)
    done = CliRunner().invoke(main, args, env={"NBA_DECISION__CATALOG_PATH": str(catalog)})
    assert done.exit_code == 0, done.output
    figures = orjson.loads(report.read_bytes())
    assert figures["offpolicy.decisions"] == sum(r.outcome != "control" for r in records)
    low, high = figures["offpolicy.only remind.dr_ci95"]
    assert low <= RATE["remind"] <= high
