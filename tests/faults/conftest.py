"""The fault suite's own Kafka broker and Redis, started once for the tests in this package
(faults stop and kill them; the integration tests' services are left alone)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.faults.harness import Services
from tests.faults.suite import quiet_clients


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    quiet_clients()
    s = Services(tmp_path_factory.mktemp("fault-services"))
    s.start()
    yield s
    s.stop()
