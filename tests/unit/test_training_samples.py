"""The ``nba.training`` contract: a discriminated union of typed samples, what the worker sends
(:func:`agents.records.to_sample`, the outcomes of :mod:`models.attribution`) and what the learner
reads (:func:`schemas.training.parse_sample`), including the untyped dicts earlier workers sent."""

from __future__ import annotations

import orjson
import pytest
from pydantic import ValidationError

from agents.records import to_sample
from models import attribution
from models.arbitration import Exposure
from models.churn import Labelled
from models.engine import Train
from models.profile import OpenExposure, Profile
from schemas.training import (
    ChurnSample,
    SegmentationSample,
    SimilaritySample,
    UpliftSample,
    ValueSample,
    parse_sample,
)

LABELLED = Labelled(model="churn", user="u:1", t=5.0, x={"recency_days": 3.0}, y=1.0, score=0.4)


@pytest.mark.parametrize(
    ("train", "kind"),
    [
        (Train("segmentation", {"spend": 1.0}, 5.0), SegmentationSample),
        (Train("churn", LABELLED.x, 5.0, 1.0, LABELLED), ChurnSample),
        (Train("churn", LABELLED.x, 5.0, 0.0, LABELLED), ChurnSample),
        (Train("value", {"spend": 2.0}, 5.0, 12.5), ValueSample),
        (
            Train("similarity", {"item": "c1", "kind": "view", "ts": 5.0, "recent": [["c2", 1.0]]}, 5.0),
            SimilaritySample,
        ),
    ],
)
def test_every_sample_the_worker_sends_reads_back_as_its_own_type(train: Train, kind: type) -> None:
    sample = parse_sample(to_sample(train).model_dump_json())
    assert type(sample) is kind and sample.model == train.model
    assert sample.x == dict(train.x) and sample.at == train.at
    if train.y is not None:
        assert float(sample.y) == train.y  # type: ignore[union-attr]


def test_the_dicts_earlier_workers_sent_still_load() -> None:
    churn = parse_sample(orjson.dumps({"model": "churn", "x": {"a": 1.0}, "y": 1.0, "at": 3.0}))
    seg = parse_sample(orjson.dumps({"model": "segmentation", "x": {"a": 1.0}, "at": 3.0}))
    old_outcome = {
        "model": "uplift",
        "x": {"item_views": 2.0, "action": "recommend_item", "channel": "app", "offer": 0.0},
        "y": False,
        "decision_id": "d1",
        "group": "control",
        "at": 3.0,
        "decided": "recommend_item",
        "decided_channel": "app",
        "segment": None,
    }
    uplift = parse_sample(orjson.dumps(old_outcome))
    assert isinstance(churn, ChurnSample) and churn.y is True
    assert isinstance(seg, SegmentationSample)
    assert isinstance(uplift, UpliftSample) and uplift.group == "control" and uplift.segment is None


@pytest.mark.parametrize(
    "raw",
    [
        {"x": {"a": 1.0}, "at": 3.0},  # no model name: once silently segmentation
        {"model": "nope", "x": {}, "at": 3.0},
        {"model": "churn", "x": {"a": 1.0}, "at": 3.0},  # a churn sample without its label
        {"model": "segmentation", "x": {"a": "text"}, "at": 3.0},
    ],
)
def test_a_sample_that_is_none_of_the_records_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        parse_sample(orjson.dumps(raw))


def test_an_outcome_is_an_uplift_sample_and_exposures_stored_before_answered_existed_load() -> None:
    p = Profile("u:1")
    attribution.expose(
        p, Exposure("d1", "c1", "recommend_item", "app", 0.0, {"segment": 2.0}, 10.0, 20.0, "treatment")
    )
    (stored,) = p.exposures
    assert OpenExposure(*stored).decision_id == "d1" and len(stored) == len(OpenExposure._fields)
    p.exposures = [stored[:-1]]  # the stored form before ``answered``: eleven fields
    p = Profile.loads(p.dumps())
    (outcome,) = attribution.on_purchase(p, "c1", 15.0)
    assert outcome == parse_sample(outcome.model_dump_json())
    assert (outcome.decision_id, outcome.y, outcome.segment, outcome.x["answered"]) == ("d1", True, 2, 0.0)
    assert p.exposures == []
