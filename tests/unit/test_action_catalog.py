"""The action catalog: the shipped file loads, and a malformed one is refused whole, naming its line."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.action_catalog import DEFAULT_PATH, load, load_file
from app.rules import step_config
from app.settings import Settings
from schemas.action_catalog import ACTION_TYPES
from schemas.errors import ConfigError

GOOD = """\
version: v1
actions:
  - name: a
    type: recommend_item
  - name: b
    type: winback_offer
    eligibility:
      stages: [at_risk]
    offer:
      tiers:
        - {min_sensitivity: 0.5, value: 20}
"""


def test_the_shipped_catalog_loads_and_has_every_action_type() -> None:
    catalog = load_file()
    assert {a.type for a in catalog.actions} == set(ACTION_TYPES)
    assert load(DEFAULT_PATH.read_text()) == catalog


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        (GOOD.replace("type: winback_offer", "type: spam"), 6, "actions.1.type"),
        (GOOD.replace("stages: [at_risk]", "stages: [gone]"), 8, "actions.1.eligibility.stages.0"),
        (GOOD.replace("value: 20", "value: -20"), 11, "actions.1.offer.tiers.0.value"),
        (GOOD.replace("  - name: b", "  - name: a"), 5, "'a' is used twice"),
        (
            GOOD.replace("    type: recommend_item\n", "    type: recommend_item\n    colour: red\n"),
            5,
            "colour",
        ),
        (GOOD.replace("actions:", "actions: ["), 3, "not valid YAML"),  # where the parser gave up
        ("version: v1\n", 1, "actions: Field required"),
        ("- just a list\n", 1, "must be a mapping"),
    ],
)
def test_a_malformed_catalog_is_refused_naming_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        load(text, "my.yaml")
    message = str(err.value)
    assert message.startswith(f"my.yaml:{line}:"), message
    assert words in message


def test_the_worker_refuses_to_start_on_a_malformed_catalog(tmp_path: Path) -> None:
    path = tmp_path / "actions.yaml"
    path.write_text(GOOD.replace("type: winback_offer", "type: spam"))
    settings = Settings.model_validate({"decision": {"catalog_path": path}})
    with pytest.raises(ConfigError, match=f"{path}:6:"):
        step_config(settings)
    path.write_text(GOOD)
    step = step_config(settings)
    assert step.actions is not None and [a.name for a in step.actions.actions] == ["a", "b"]
    assert step_config(Settings.model_validate({"decision": {"policy": "rule"}})).actions is None


def test_the_catalogs_channels_are_the_configured_ones(tmp_path: Path) -> None:
    """Channels are configured at run time (NBA_INGRESS__CHANNELS): a catalog may name a channel
    added there, an action without channels gets exactly the configured ones, and a channel that
    is not configured stops the worker with the action's name."""
    path = tmp_path / "actions.yaml"
    path.write_text(
        GOOD.replace("    type: recommend_item\n", "    type: recommend_item\n    channels: [podcast]\n")
    )
    configured = {"decision": {"catalog_path": path}, "ingress": {"channels": "app,podcast"}}
    step = step_config(Settings.model_validate(configured))
    assert step.actions is not None
    assert [a.channels for a in step.actions.actions] == [["podcast"], ["app", "podcast"]]
    with pytest.raises(ConfigError, match="action 'a' names channel 'podcast'"):
        step_config(Settings.model_validate({"decision": {"catalog_path": path}}))
