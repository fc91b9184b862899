"""Engine effects as the records the service publishes: actions, cancellations, decision-log
records, stage changes and training samples (the public contracts of :mod:`schemas`)."""

from __future__ import annotations

from datetime import UTC, datetime

from models import contact
from models.decision import Decision, Verdict
from models.engine import Train
from models.identity import external_id
from models.lifecycle import Transition
from schemas.actions import NextBestAction, Offer
from schemas.decisions import Candidate as DecisionCandidate
from schemas.decisions import DecisionRecord
from schemas.lifecycle import LifecycleChange
from schemas.training import ChurnSample, SegmentationSample, SimilaritySample, ValueSample


def to_action(
    canonical: str, d: Decision, segment: int | None = None, stage: str | None = None
) -> NextBestAction:
    kind, uid = external_id(canonical)
    return NextBestAction(
        action_id=d.action_id,
        user_id=uid,
        user_kind="user" if kind == "user" else "anonymous",
        action_type=d.action_type,
        action=d.action or None,
        channel=d.channel,
        item_ids=list(d.item_ids),
        offer=Offer(kind="coupon", value=d.offer_value, cost=d.offer_cost) if d.offer_value else None,
        score=d.score,
        reasons=list(d.reasons),
        model_versions=dict(d.model_versions),
        trigger_event_id=d.trigger_event_id,
        created_at=datetime.fromtimestamp(d.created_at, UTC),
        send_at=datetime.fromtimestamp(d.send_at, UTC),
        expires_at=datetime.fromtimestamp(d.expires_at, UTC),
        segment=segment,
        stage=stage,
    )


def to_record(
    canonical: str, v: Verdict, segment: int | None = None, stage: str | None = None
) -> DecisionRecord:
    """The decision-log record of a verdict."""
    kind, uid = external_id(canonical)
    d = v.decision
    return DecisionRecord(
        decision_id=v.decision_id,
        user_id=uid,
        user_kind="user" if kind == "user" else "anonymous",
        decided_at=datetime.fromtimestamp(v.decided_at, UTC),
        trigger_event_id=v.trigger_event_id,
        outcome=v.outcome,
        action_id=d.action_id if d else None,
        action_type=d.action_type if d else None,
        action=(d.action or None) if d else None,
        channel=d.channel if d else None,
        item_ids=list(d.item_ids) if d else [],
        send_at=datetime.fromtimestamp(d.send_at, UTC) if d else None,
        candidates=[
            DecisionCandidate(
                action_type=c.action_type,
                channel=c.channel,
                score=c.score,
                removed_by=list(c.removed_by),
                action=c.action or None,
                uplift=c.uplift,
                p_convert=c.p_convert,
                offer=c.offer,
            )
            for c in v.candidates
        ],
        explored=v.explored,
        propensity=v.propensity,
        policy=v.policy,
        model_versions=dict(d.model_versions) if d else {},
        segment=segment,
        stage=stage,
    )


def to_cancelled(canonical: str, send: contact.Send, at: float, why: str) -> NextBestAction:
    """The ``action_cancelled`` event that withdraws a scheduled send (a contact-log entry)."""
    kind, uid = external_id(canonical)
    return NextBestAction(
        event="action_cancelled",
        action_id=send.action_id,
        user_id=uid,
        user_kind="user" if kind == "user" else "anonymous",
        action_type=send.action_type,
        channel=send.channel,
        score=0.0,
        reasons=[f"{why} before the send time"],
        created_at=datetime.fromtimestamp(at, UTC),
        send_at=datetime.fromtimestamp(send.at, UTC),
        expires_at=datetime.fromtimestamp(send.expires_at, UTC),
    )


def to_lifecycle(change: Transition, segment: int | None) -> LifecycleChange:
    kind, uid = external_id(change.canonical)
    return LifecycleChange.model_validate(
        {
            "user_id": uid,
            "user_kind": "user" if kind == "user" else "anonymous",
            "from": change.from_stage,
            "to": change.to_stage,
            "at": datetime.fromtimestamp(change.at, UTC),
            "reason": change.reason,
            "segment": segment,
        }
    )


def to_sample(t: Train) -> SegmentationSample | ChurnSample | ValueSample | SimilaritySample:
    """The ``nba.training`` record of a training sample the engine emitted."""
    if t.model == "segmentation":
        return SegmentationSample(model="segmentation", x=dict(t.x), at=t.at)
    if t.model == "churn":
        return ChurnSample(model="churn", x=dict(t.x), y=bool(t.y), at=t.at)
    if t.model == "value":
        return ValueSample(model="value", x=dict(t.x), y=float(t.y or 0.0), at=t.at)
    return SimilaritySample(model="similarity", x=dict(t.x), at=t.at)
