"""Training samples (``nba.training``, one partition, read by the learner), version 1.

Every worker sends what the shared models learn to this topic; the learner is its only reader.
A sample is one of five records, told apart by ``model`` (a discriminated union, so a sample
without a model name, or with a name no model has, is refused instead of silently training
one). ``x`` is the model's own feature dict: the models keep River's API (``learn_one`` on a
dict), so its keys are the models' features, not part of this contract.

>>> s = parse_sample(b'{"model": "churn", "x": {"recency_days": 3.0}, "y": 1.0, "at": 0.0}')
>>> type(s).__name__, s.y
('ChurnSample', True)
>>> try:
...     parse_sample(b'{"x": {}, "at": 0.0}')
... except ValueError as e:
...     print(e.errors()[0]["type"])
union_tag_not_found
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, TypeAdapter

_CONFIG = ConfigDict(extra="ignore", frozen=True)
"""Unknown fields are ignored: a newer worker may add fields before the learner knows them."""


class SegmentationSample(BaseModel):
    """One applied event's profile features, for the segmentation model (unlabelled)."""

    model_config = _CONFIG
    model: Literal["segmentation"]
    x: dict[str, float]
    at: float = Field(description="Event time of the event (epoch seconds).")


class ChurnSample(BaseModel):
    """A labelled profile snapshot: did the user stay silent for the churn horizon after it."""

    model_config = _CONFIG
    model: Literal["churn"]
    x: dict[str, float]
    y: bool
    at: float = Field(description="Event time of the snapshot (epoch seconds).")


class ValueSample(BaseModel):
    """A labelled profile snapshot: the user's spend over the horizon after it."""

    model_config = _CONFIG
    model: Literal["value"]
    x: dict[str, float]
    y: float
    at: float = Field(description="Event time of the snapshot (epoch seconds).")


class SimilaritySample(BaseModel):
    """One interaction with an item and the user's other recent items (so the learner keeps no
    per-user data): ``{"item", "kind", "ts", "progress", "segment", "channel", "recent"}``."""

    model_config = _CONFIG
    model: Literal["similarity"]
    x: dict[str, Any]
    at: float = Field(description="Event time of the interaction (epoch seconds).")


class UpliftSample(BaseModel):
    """A decision's settled outcome (:mod:`models.attribution`): bought the decision's item within
    its window (``y``) or not. The uplift model learns ``x`` and ``y``; the rest is for the uplift
    report and off-policy evaluation."""

    model_config = _CONFIG
    model: Literal["uplift"] = "uplift"
    x: dict[str, float | str] = Field(
        description="The features known at the decision, with action, channel, offer and (sent "
        "messages) answered."
    )
    y: bool
    decision_id: str
    group: Literal["treatment", "control", "holdout", "none"]
    at: float = Field(description="Send time (epoch seconds), where the window opened.")
    decided: str = Field(description="The action type decided (``none``: nothing).")
    decided_channel: str
    segment: int | None = None


AnySample = SegmentationSample | ChurnSample | ValueSample | SimilaritySample | UpliftSample
Sample = Annotated[AnySample, Field(discriminator="model")]


class TrainingSample(RootModel[Sample]):
    """Any training sample (the topic's contract, for the JSON Schema export)."""


_ADAPTER: TypeAdapter[Sample] = TypeAdapter(Sample)


def parse_sample(raw: bytes | str) -> AnySample:
    """Parse one ``nba.training`` value (raises ``pydantic.ValidationError`` when it is none)."""
    return _ADAPTER.validate_json(raw)
