"""Policy change (``nba.config``, compacted, keyed by settings section), version 1.

Operators change the contact policy and the control groups of running workers without a restart
(``nba policy``): the newest record per section overrides the environment's values for the
fields it names; a tombstone returns the section to the environment. Every worker logs each
change it applies with who made it and why, and counts it.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

SECTIONS = ("contact", "decision", "catalog")
"""What can change at run time: settings sections (``NBA_CONTACT__*``, ``NBA_DECISION__*``) and the
action catalog (``catalog``: the record's values are a whole catalog, which replaces the running one)."""


class PolicyChange(BaseModel):
    """New values for some fields of one settings section."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    section: Literal["contact", "decision", "catalog"]
    values: dict[str, Any] = Field(
        description='Fields of the section and their new values, e.g. {"paused": true} (the kill switch); '
        "for catalog, a whole action catalog (action_catalog.v1)."
    )
    changed_by: str = Field(min_length=1, max_length=128, description="Who made the change (audit).")
    reason: str = Field(min_length=1, max_length=1000, description="Why (audit).")
    at: AwareDatetime = Field(description="Wall time of the change.")
