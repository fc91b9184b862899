"""Contact policy, control groups and action catalog of a running worker, changed through ``nba.config``.

Every worker follows the compacted topic from the beginning (:func:`app.compacted.follow`). The
newest record per section overrides the environment's values of the fields it names; a
tombstone returns the section to the environment. A ``catalog`` record holds a whole action
catalog, which replaces the running one (a tombstone returns to the deployment's file). A change
is applied whole or not at all: a
record that does not validate (unknown section or field, a value out of range) is logged and
counted and changes nothing. Every applied change is logged with who made it and why
(``nba_policy_changes_total``, ``nba_kill_switch``). The worker's per-user step reads
``rt.step`` on every event, so the next event decides under the new policy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ValidationError

from agents import metrics
from app.settings import Settings
from models.user_step import StepConfig
from schemas.action_catalog import ActionCatalog
from schemas.config import PolicyChange

log = logging.getLogger(__name__)


def section_with(base: Settings, section: str, values: dict[str, Any]) -> BaseModel:
    """``base``'s section with ``values`` over it, validated; ``ValueError`` (or pydantic's
    ``ValidationError``) for an unknown field or a value out of range."""
    current = getattr(base, section)
    unknown = set(values) - set(type(current).model_fields)
    if unknown:
        raise ValueError(f"unknown {section} fields: {sorted(unknown)}")
    return type(current).model_validate(current.model_dump() | values)  # type: ignore[no-any-return]


class PolicyFollower:
    """Applies ``nba.config`` records to the settings the worker's step is built from."""

    def __init__(
        self, base: Settings, apply: Callable[[StepConfig], None], build: Callable[[Settings], StepConfig]
    ):
        self.base = base
        self.apply_step = apply
        self.build = build
        self.overrides: dict[str, dict[str, Any]] = {}
        """section -> fields over the environment's (``catalog``: the whole catalog)."""
        self.effective = base

    def apply(self, key: bytes | None, value: bytes | None, offset: int) -> None:
        section = key.decode() if key else ""
        if value is None:
            if self.overrides.pop(section, None) is not None:
                self._use(
                    dict(self.overrides), f"{section} back to the environment's values (offset {offset})"
                )
            return
        try:
            change = PolicyChange.model_validate_json(value)
            if change.section != section:
                raise ValueError(f"record keyed {section!r} changes section {change.section!r}")
            if section == "catalog":  # a whole catalog replaces the running one
                overrides = {
                    **self.overrides,
                    section: ActionCatalog.model_validate(change.values).model_dump(),
                }
            else:
                overrides = {**self.overrides, section: {**self.overrides.get(section, {}), **change.values}}
            what = f"version {change.values.get('version')}" if section == "catalog" else change.values
            self._use(
                overrides,
                f"{section} {what} by {change.changed_by} at {change.at.isoformat()}: "
                f"{change.reason} (offset {offset})",
            )
        except (ValidationError, ValueError) as exc:
            metrics.POLICY_REJECTED.inc()
            log.error("policy change at offset %d refused, nothing changed: %s", offset, str(exc)[:500])

    def _use(self, overrides: dict[str, dict[str, Any]], audit: str) -> None:
        updates = {
            name: section_with(self.base, name, values)
            for name, values in overrides.items()
            if name != "catalog"
        }
        effective = self.base.model_copy(update=updates)
        step = self.build(effective)  # validated above; building cannot half-apply
        if "catalog" in overrides and step.actions is not None:
            step = replace(step, actions=ActionCatalog.model_validate(overrides["catalog"]))
        self.overrides, self.effective = overrides, effective
        self.apply_step(step)
        metrics.POLICY_CHANGES.inc()
        metrics.KILL_SWITCH.set(float(effective.contact.paused))
        log.warning("policy change applied: %s", audit)
