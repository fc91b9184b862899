"""Endpoints and logs a platform team can expose (issue 18, finding 10): Faust's table and router
pages are off; with ``NBA_WORKER__API_TOKEN`` the read endpoints need the bearer token while
``/metrics``, ``/healthz`` and ``/readyz`` stay open; and a debug-level run's log holds no raw
user id, no payload and no secret."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.integration.conftest import Deployment, produce, started_worker, view_records, wait_for

TOKEN = "it-token-9f2c"
SALT = "it-salt-77ab31"


async def test_faust_pages_are_off_and_read_endpoints_need_the_token(tmp_path: Path) -> None:
    dep = Deployment(
        tmp_path,
        partitions=2,
        extra={
            "NBA_WORKER__API_TOKEN": TOKEN,
            "NBA_WORKER__LOGLEVEL": "debug",
            "NBA_ERASE__SALT": SALT,
        },
    )
    worker = await started_worker(dep)
    try:
        users = ["tok", *(f"zqxuser{i}" for i in range(5))]
        t0 = datetime(2026, 2, 1, tzinfo=UTC)
        await produce(dep.bootstrap, [r for u in users for r in view_records(dep, u, t0, item=f"zqxitem{u}")])
        auth = {"Authorization": f"Bearer {TOKEN}"}
        async with httpx.AsyncClient(timeout=10) as client:

            async def mirrored() -> bool | object:
                r = await client.get(f"{worker.url}/users/tok", headers=auth)
                return r.status_code == 200 or r.status_code

            await wait_for(mirrored, 60, "the profile, with the token")
            for path in ("/users/tok", "/users/tok/recommendations", "/items/c1/similar", "/segments"):
                r = await client.get(worker.url + path)
                assert r.status_code == 401 and r.headers["WWW-Authenticate"].startswith("Bearer"), path
                wrong = await client.get(worker.url + path, headers={"Authorization": "Bearer nope"})
                assert wrong.status_code == 401, path
                assert (await client.get(worker.url + path, headers=auth)).status_code in (200, 404), path
            for path in ("/metrics", "/healthz", "/readyz"):
                assert (await client.get(worker.url + path)).status_code == 200, path
            for path in ("/table/profiles/u:tok/", "/table/identity/", "/router/"):
                r = await client.get(worker.url + path)
                assert r.status_code == 404 and "tok" not in r.text, path

            async def all_applied() -> bool | object:
                got = [(await client.get(f"{worker.url}/users/{u}", headers=auth)).status_code for u in users]
                return set(got) == {200} or got

            await wait_for(all_applied, 60, "every user's profile")
        log = worker.log.read_text()
        assert "DEBUG" in log and len(log.splitlines()) > 100, "a debug-level run"
        for secret in (TOKEN, SALT):
            assert secret not in log, "a secret in the log"
        leaks = [line for line in log.splitlines() if "zqxuser" in line or "occurred_at" in line]
        assert not leaks, f"{len(leaks)} log lines carry a raw user id or a payload, e.g. {leaks[:3]}"
    finally:
        worker.kill()
