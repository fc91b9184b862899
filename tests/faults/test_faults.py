"""The fault suite's seeded subset in the README's test command (``make faults`` runs all 20
seeded runs and writes ``bench/results/faults.json``): two runs, six fault kinds, every
invariant of the history checker, and the checker's own test that it catches a wrong history."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.harness import Services
from tests.faults.suite import run_one

SUBSET = (
    (101, ["sigkill_after_commit", "redis_flush", "poison"]),
    (102, ["broker_kill", "store_deleted", "future_dated"]),
)


@pytest.mark.timeout(600)
@pytest.mark.parametrize(("seed", "kinds"), SUBSET, ids=["-".join(k) for _, k in SUBSET])
async def test_a_seeded_run_keeps_every_invariant(
    services: Services, tmp_path: Path, seed: int, kinds: list[str]
) -> None:
    result = await run_one(services, tmp_path, seed % 100, seed, kinds, self_test=seed == SUBSET[0][0])
    assert [f.kind for f in result.faults] == kinds
    assert all(f.recovered_s is not None for f in result.faults), [
        (f.kind, f.recovered_s) for f in result.faults
    ]
    assert not result.violations, result.violations
    assert result.counts["users"] == 120 and result.counts["profiles"] >= 120
    if result.caught:
        assert {"every_input_on_the_broker", "every_valid_input_applied_once"} <= result.caught[
            "input_never_sent"
        ]
        assert "profiles_equal_offline_engine" in result.caught["event_forgotten_offline"]
