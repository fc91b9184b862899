"""Bad input through the real worker, in the README's test command: 3,000 hypothesis-built
messages over and around the ingress contract (``make faults`` sends 100,000). No crash, every
valid one applied once (or dead-lettered as late or future-dated), every invalid one in the DLQ
with a reason that fits what was broken, and the contract agrees with how each was built."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.fuzz import run
from tests.faults.harness import Services


@pytest.mark.timeout(900)
async def test_thousands_of_generated_messages_through_the_worker(services: Services, tmp_path: Path) -> None:
    result = await run(services, tmp_path, 3000)
    assert result.cases == 3000 and 0.3 * result.cases < result.valid < 0.9 * result.cases
    assert not result.crashes, result.crashes
    assert not result.violations, result.violations[:10]
    assert result.reasons["applied"] > 1000 and len(result.reasons) >= 6, result.reasons
