"""Dead-letter record (``events.dlq`` and ``nba.dlq-internal``), version 1: the original bytes and
why they were refused.

``events.dlq`` holds what producers sent and the worker refused (their fixes); ``nba.dlq-internal``
holds messages of the worker's own internal topics it could not process (our bugs), in the same
contract. Every record fits the producer limit: an original over :data:`MAX_ORIGINAL_BYTES` is cut,
with its size and hash kept, and marked not replayable.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

MAX_ORIGINAL_BYTES = 512 * 1024
"""The most of an original value a dead-letter record holds: base64 makes it 683 KiB, which with
the rest of the record stays under Kafka's default 1 MB producer and broker limit."""


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
    future_dated = "future_dated"
    """``occurred_at`` is further ahead of the record timestamp than the allowed clock skew."""
    late = "late"
    """Older than the user's exact-dedupe window behind their newest event: it cannot be checked
    for duplicates, so it is not applied."""
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
    value_b64: str = Field(
        description="Original value bytes, base64; only the first `MAX_ORIGINAL_BYTES` when `truncated`."
    )
    received_at: AwareDatetime = Field(description="Wall-clock time the worker refused it.")
    original_bytes: int | None = Field(
        default=None, description="Size of the original value in bytes (added in v1.1)."
    )
    original_sha256: str | None = Field(
        default=None, description="SHA-256 (hex) of the whole original value (added in v1.1)."
    )
    truncated: bool = Field(
        default=False,
        description="`value_b64` holds only the start of the original (which was too large for a "
        "dead-letter record to fit the producer limit): the record cannot be replayed.",
    )
    replayable: bool = Field(
        default=True, description="The original can be sent back as it is held here (false when truncated)."
    )
