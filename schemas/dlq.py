"""Dead-letter record (``events.dlq``), version 1: the original bytes and why they were refused."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Reason(StrEnum):
    """Machine-readable reason a message was dead-lettered."""

    invalid_json = "invalid_json"
    not_an_object = "not_an_object"
    schema_violation = "schema_violation"
    oversized = "oversized"
    unknown_channel = "unknown_channel"
    topic_mismatch = "topic_mismatch"
    unknown_currency = "unknown_currency"
    key_mismatch = "key_mismatch"
    processing_error = "processing_error"


class DeadLetter(BaseModel):
    """A refused message, with enough to find, fix and replay it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    reason: Reason
    detail: str = Field(max_length=2048, description="Human-readable detail (first validation errors).")
    topic: str
    partition: int
    offset: int
    key_b64: str | None = Field(default=None, description="Original key, base64.")
    value_b64: str = Field(description="Original value bytes, base64 (may be truncated to 1 MiB).")
    received_at: AwareDatetime = Field(description="Wall-clock time the worker refused it.")
