"""Policy changes from nba.config: applied whole or not at all, a tombstone restores the
environment, and the step the worker uses changes with them."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import orjson

from app.policy_config import PolicyFollower
from app.rules import step_config
from app.settings import Settings
from models.user_step import StepConfig


def change(section: str, values: dict[str, object]) -> bytes:
    return orjson.dumps(
        {"section": section, "values": values, "changed_by": "sre", "reason": "test", "at": datetime.now(UTC)}
    )


def test_changes_apply_whole_merge_per_section_and_a_tombstone_restores_the_environment() -> None:
    steps: list[StepConfig] = []
    f = PolicyFollower(Settings(), steps.append, step_config)
    f.apply(b"contact", change("contact", {"paused": True}), 0)
    assert steps[-1].contact.paused and steps[-1].contact.max_per_day == 2
    f.apply(b"contact", change("contact", {"max_per_day": 1}), 1)
    assert steps[-1].contact.paused and steps[-1].contact.max_per_day == 1  # merged with the earlier one
    f.apply(b"decision", change("decision", {"control_share": 0.2}), 2)
    assert steps[-1].control_share == 0.2 and steps[-1].contact.paused
    f.apply(b"contact", None, 3)
    assert (
        not steps[-1].contact.paused and steps[-1].contact.max_per_day == 2 and steps[-1].control_share == 0.2
    )


def test_an_invalid_change_changes_nothing() -> None:
    steps: list[StepConfig] = []
    f = PolicyFollower(Settings(), steps.append, step_config)
    f.apply(b"contact", change("contact", {"paused": True}), 0)
    for bad in (
        change("contact", {"max_per_day": -1}),  # out of range
        change("contact", {"no_such_field": 1}),  # an unknown field
        change("decision", {"control_share": 0.5}),  # keyed under another section
        b"{not json",
    ):
        f.apply(b"contact", bad, 1)
    assert len(steps) == 1 and steps[-1].contact.paused and f.effective.contact.max_per_day == 2


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


async def test_the_users_agent_waits_until_the_policy_in_force_is_known() -> None:
    import asyncio

    import pytest

    from agents import users
    from agents.runtime import Runtime, TimeRules
    from app.redis_mirror import RedisMirror
    from schemas.validate import ValidationPolicy

    given = {"prefix", "validation", "time", "step", "no_send", "mirror", "policy_ready"}
    # topics, tables and readers are never touched before the policy is known
    untouched = {f.name for f in dataclasses.fields(Runtime) if f.name not in given and _required(f)}
    rt = Runtime(
        prefix="",
        validation=ValidationPolicy(channels=frozenset({"app"})),
        time=TimeRules(1.0, 1.0, 1.0, 3600.0),
        step=StepConfig(),
        no_send=True,
        mirror=RedisMirror(None, ""),  # type: ignore[arg-type]  # never touched here
        policy_ready=asyncio.Event(),
        **dict.fromkeys(untouched),
    )
    task = asyncio.create_task(users.handle(rt, 0, {"kind": "unknown"}))
    await asyncio.sleep(0.05)
    assert not task.done()  # waiting: the policy on nba.config is not read yet
    rt.policy_ready.set()
    with pytest.raises(ValueError, match="unknown user-stream message kind"):
        await task
