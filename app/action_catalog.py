"""Loading the action catalog (:mod:`schemas.action_catalog`) from YAML, whole or not at all.

:func:`load` parses and validates the text; any problem raises
:class:`~schemas.errors.ConfigError` naming the file, the line and what is wrong, and nothing of
the catalog is used. The worker loads it at start (a malformed file stops the start) and again on
every ``catalog`` change on ``nba.config`` (a malformed change is refused and the running catalog
stays).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.action_catalog import ActionCatalog
from schemas.errors import ConfigError

DEFAULT_PATH = Path(__file__).with_name("actions.yaml")


def load(text: str, source: str = "<catalog>") -> ActionCatalog:
    """The catalog in ``text``; :class:`ConfigError` ``"{source}:{line}: ..."`` if it is malformed.

    >>> load("version: v\\nactions:\\n  - name: a\\n    type: recommend_item\\n").actions[0].item
    'recommended'
    >>> load("version: v\\nactions:\\n  - name: a\\n    type: spam_everyone\\n", "c.yaml")
    Traceback (most recent call last):
    ...
    schemas.errors.ConfigError: c.yaml:4: actions.0.type: Input should be 'recommend_item', ...
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(f"{source}:{line}: not valid YAML: {exc.problem or exc.context}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{source}:1: the catalog must be a mapping with 'version' and 'actions'")
    _no_duplicate_names(root, source)
    try:
        return ActionCatalog.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        where = ".".join(str(part) for part in loc) or "catalog"
        message = error["msg"]
        if error["type"] == "literal_error":  # pydantic lists every allowed value: keep it short
            message = message.split(",")[0] + ", ..."
        raise ConfigError(f"{source}:{_line(root, loc)}: {where}: {message}") from None


def load_file(path: Path | str | None = None) -> ActionCatalog:
    """The catalog in the file at ``path`` (the shipped default if ``None``)."""
    file = Path(path) if path else DEFAULT_PATH
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{file}: cannot read the action catalog: {exc.strerror}") from None
    return load(text, str(file))


def _line(node: Any, loc: tuple[Any, ...]) -> int:
    """The 1-based line of the deepest YAML node on the path ``loc`` (pydantic's error location)."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                if key.value == str(part):
                    child = value if not isinstance(value, yaml.ScalarNode) else key
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
        if child is None:
            return line
        node, line = child, child.start_mark.line + 1
    return line


def _no_duplicate_names(root: Any, source: str) -> None:
    """Name the line of an action whose name an earlier action already has."""
    actions = next((v for k, v in getattr(root, "value", ()) if getattr(k, "value", None) == "actions"), None)
    seen: set[str] = set()
    for node in actions.value if isinstance(actions, yaml.SequenceNode) else ():
        if not isinstance(node, yaml.MappingNode):
            continue
        for key, value in node.value:
            if key.value == "name" and isinstance(value, yaml.ScalarNode):
                if value.value in seen:
                    raise ConfigError(
                        f"{source}:{value.start_mark.line + 1}: action name {value.value!r} is used twice"
                    )
                seen.add(value.value)


def for_channels(catalog: ActionCatalog, channels: Sequence[str], source: str = "<catalog>") -> ActionCatalog:
    """The catalog on the configured channels (``NBA_INGRESS__CHANNELS``): an action that names a
    channel not configured is a :class:`ConfigError`; an action that names none may use every
    configured channel.

    >>> c = load("version: v\\nactions:\\n  - name: a\\n    type: recommend_item\\n")
    >>> for_channels(c, ["app", "podcast"]).actions[0].channels
    ['app', 'podcast']
    >>> c = load("version: v\\nactions:\\n  - name: a\\n    type: recommend_item\\n    channels: [fax]\\n")
    >>> for_channels(c, ["app"], "c.yaml")
    Traceback (most recent call last):
    ...
    schemas.errors.ConfigError: c.yaml: action 'a' names channel 'fax', which NBA_INGRESS__CHANNELS ...
    """
    configured, actions = set(channels), []
    for spec in catalog.actions:
        if "channels" not in spec.model_fields_set:
            actions.append(spec.model_copy(update={"channels": list(channels)}))
            continue
        for channel in spec.channels:
            if channel not in configured:
                raise ConfigError(
                    f"{source}: action {spec.name!r} names channel {channel!r}, "
                    "which NBA_INGRESS__CHANNELS does not list"
                )
        actions.append(spec)
    return catalog.model_copy(update={"actions": actions})
