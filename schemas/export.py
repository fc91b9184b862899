"""Exports the JSON Schema of every public contract to ``schemas/json/`` (``nba schemas``)."""

from __future__ import annotations

from pathlib import Path

import orjson
from pydantic import BaseModel

from schemas.action_catalog import ActionCatalog
from schemas.actions import NextBestAction
from schemas.catalog import CatalogItem
from schemas.config import PolicyChange
from schemas.decisions import DecisionRecord
from schemas.dlq import DeadLetter
from schemas.events import Event
from schemas.feedback import Feedback
from schemas.lifecycle import LifecycleChange
from schemas.training import TrainingSample
from schemas.users import ConsentEvent, EraseRequest

CONTRACTS: dict[str, type[BaseModel]] = {
    "event.v1": Event,
    "catalog_item.v1": CatalogItem,
    "next_best_action.v1": NextBestAction,
    "action_catalog.v1": ActionCatalog,
    "decision.v1": DecisionRecord,
    "dead_letter.v1": DeadLetter,
    "consent.v1": ConsentEvent,
    "erase_request.v1": EraseRequest,
    "feedback.v1": Feedback,
    "lifecycle_change.v1": LifecycleChange,
    "policy_change.v1": PolicyChange,
    "training_sample.v1": TrainingSample,
}
JSON_DIR = Path(__file__).parent / "json"


def rendered() -> dict[str, bytes]:
    """File name -> the exact bytes the exported schema file must hold."""
    return {
        f"{name}.schema.json": orjson.dumps(
            model.model_json_schema(mode="serialization"),
            option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE,
        )
        for name, model in CONTRACTS.items()
    }


def export(directory: Path = JSON_DIR) -> list[Path]:
    """Write every contract's schema; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in rendered().items():
        path = directory / name
        path.write_bytes(content)
        written.append(path)
    return written


def stale(directory: Path = JSON_DIR) -> list[str]:
    """Names of exported files that are missing or differ from the models."""
    return [
        name
        for name, content in rendered().items()
        if not (directory / name).exists() or (directory / name).read_bytes() != content
    ]
