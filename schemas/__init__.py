"""Versioned contracts of every topic (pydantic v2), and the validator of raw ingress bytes.

This package is the bottom of the dependency chain (``schemas`` <- ``models`` <- ``agents`` <- ``app``):
it imports nothing from the rest of the project. Changes are additive with defaults; the JSON Schema
exported to ``schemas/json/`` is what producer and sender teams read.
"""

from schemas.actions import NextBestAction, Offer
from schemas.catalog import CatalogItem
from schemas.dlq import DeadLetter
from schemas.events import (
    ClickProps,
    Context,
    Event,
    EventType,
    PurchaseProps,
    ShareProps,
    ViewProps,
)

__all__ = [
    "CatalogItem",
    "ClickProps",
    "Context",
    "DeadLetter",
    "Event",
    "EventType",
    "NextBestAction",
    "Offer",
    "PurchaseProps",
    "ShareProps",
    "ViewProps",
]
