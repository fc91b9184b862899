"""The per-user stage: profiles, due times and decisions, on the partition that owns the user.

Called inline by ``ingest`` when an event is already on its user's partition (its key is the
user's raw id: nearly every event), and by the ``users`` agent for messages that had to hop
through the user stream (keyed by the target's raw id, so it lands on the same partition number;
Faust co-partitions topics with equal partition counts). Messages:

* ``event``: apply an event (``via`` set when forwarded from a merged anonymous profile);
* ``link``: fold an anonymous profile into a user (sent to the anonymous profile);
* ``merge``: receive a folded profile (sent to the user);
* ``consent``: a consent change for one channel (from :mod:`agents.consent`).
* ``feedback``: a sender's feedback on an action (from :mod:`agents.feedback`);
* ``erase``: delete a user (from :mod:`agents.erase`) or an anonymous id merged into one.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from agents import metrics
from agents.dlq import each_event
from agents.runtime import Runtime
from models import contact
from models.attribution import learnable
from models.churn import ChurnModel, Labelled, ValueModel
from models.clock import PartitionClock
from models.decision import Decision, Verdict
from models.due import DueIndex
from models.facts import EventFacts
from models.identity import ANON, USER, erased_key, external_id, routing_id
from models.lifecycle import Transition
from models.profile import (
    Applied,
    Profile,
    merge_into,
    needs_merge_first,
    park,
    take_parked,
)
from models.recommend import Recommender
from models.segmentation import Segmenter
from models.uplift import UpliftModel
from models.user_step import (
    Scorers,
    StepResult,
    on_consent,
    on_due,
    on_erase,
    on_event,
    on_feedback,
    on_merged,
)
from schemas.actions import NextBestAction, Offer
from schemas.decisions import Candidate as DecisionCandidate
from schemas.decisions import DecisionRecord
from schemas.lifecycle import LifecycleChange


def _cache(rt: Runtime, profile: Profile) -> Profile:
    cache = rt.profile_cache
    cache[profile.canonical] = profile
    cache.move_to_end(profile.canonical)
    if len(cache) > rt.profile_cache_size:
        cache.popitem(last=False)
    return profile


def _load(rt: Runtime, canonical: str, create: bool = False) -> Profile | None:
    """The live profile object, from the cache, else the table (else a new one if ``create``).

    It is put in the cache at once: the ``ingest`` and ``users`` agents interleave at every
    ``await``, and both must change the same object, never two copies of it (the later store
    of a copy would undo the other's change).
    """
    profile: Profile | None = rt.profile_cache.get(canonical)
    if profile is not None:
        rt.profile_cache.move_to_end(canonical)
        return profile
    raw = rt.profiles.get(canonical)
    if raw is not None:
        return _cache(rt, Profile.loads(raw))
    return _cache(rt, Profile(canonical)) if create else None


def _store(rt: Runtime, profile: Profile) -> None:
    """Write the profile (and with it its dedupe record) to the table, the cache and the mirror.

    Called right after a change and before the next ``await``, so the table never lags the
    object another agent may read while this one waits on a send.
    """
    rt.profiles[profile.canonical] = profile.dumps()
    _cache(rt, profile)
    rt.mirror.put(profile.canonical, profile)


def _clock(rt: Runtime, partition: int) -> PartitionClock:
    clock = rt.clocks.get(partition)
    if clock is None:
        assert rt.clocks_table is not None
        raw = rt.clocks_table.get(str(partition))
        clock = PartitionClock.from_dict(raw) if raw else PartitionClock()
        rt.clocks[partition] = clock
    return clock


def to_action(canonical: str, d: Decision, profile: Profile | None = None) -> NextBestAction:
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
        segment=profile.segment if profile else None,
        stage=profile.stage if profile else None,
    )


def to_record(canonical: str, v: Verdict, profile: Profile | None = None) -> DecisionRecord:
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
        segment=profile.segment if profile else None,
        stage=profile.stage if profile else None,
    )


def to_cancelled(canonical: str, send: tuple[Any, ...], at: float, why: str) -> NextBestAction:
    """The ``action_cancelled`` event that withdraws a scheduled send (a contact-log entry)."""
    kind, uid = external_id(canonical)
    return NextBestAction(
        event="action_cancelled",
        action_id=send[contact.ACTION_ID],
        user_id=uid,
        user_kind="user" if kind == "user" else "anonymous",
        action_type=send[contact.TYPE],
        channel=send[contact.CHANNEL],
        score=0.0,
        reasons=[f"{why} before the send time"],
        created_at=datetime.fromtimestamp(at, UTC),
        send_at=datetime.fromtimestamp(send[contact.AT], UTC),
        expires_at=datetime.fromtimestamp(send[contact.EXPIRES], UTC),
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


def _scorers(rt: Runtime) -> Scorers:
    """The latest snapshots of the shared models."""
    m = rt.models
    seg, churn, value, rec = m.get("segmentation"), m.get("churn"), m.get("value"), m.get("similarity")
    return Scorers(
        segmenter=seg if isinstance(seg, Segmenter) else None,
        churn=churn if isinstance(churn, ChurnModel) else None,
        value=value if isinstance(value, ValueModel) else None,
        recommender=rec.attach(rt.catalog) if isinstance(rec, Recommender) else None,
        uplift=uplift if isinstance(uplift := m.get("uplift"), UpliftModel) else None,
    )


async def _train(rt: Runtime, model: str, x: Any, at: float, **label: Any) -> None:
    """Send one sample of ``model`` to the learner (``y=`` for a labelled one)."""
    await rt.training.send(value=orjson.dumps({"model": model, "x": x, **label, "at": at}))


async def _send_outcomes(rt: Runtime, outcomes: Iterable[dict[str, Any]]) -> None:
    """Count decision outcomes; send the learnable ones to the learner (model ``uplift``)."""
    for outcome in outcomes:
        metrics.OUTCOMES.labels(outcome["decided"], outcome["group"], str(bool(outcome["y"])).lower()).inc()
        if learnable(outcome):
            await _train(rt, "uplift", **outcome)


async def _send_labelled(rt: Runtime, labelled: Iterable[Labelled]) -> None:
    """Send snapshots whose labels became known to the learner."""
    for item in labelled:
        metrics.CHURN_LABELS.labels(item.model).inc()
        await _train(rt, item.model, item.x, item.t, y=item.y)


async def _publish_changes(rt: Runtime, profile: Profile, changes: Iterable[Transition]) -> None:
    for change in changes:
        metrics.LIFECYCLE_TRANSITIONS.labels(change.from_stage, change.to_stage).inc()
        if rt.no_send:
            continue  # rebuilding state: marketing tools must not see replayed transitions
        record = to_lifecycle(change, profile.segment)
        await rt.lifecycle.send(
            key=record.user_id.encode(), value=record.model_dump_json(by_alias=True).encode()
        )


async def hop(rt: Runtime, msg: dict[str, Any]) -> None:
    """Send a message to the partition of ``msg["canonical"]`` through the user stream."""
    await rt.user_stream.send(key=routing_id(msg["canonical"]).encode(), value=orjson.dumps(msg))


async def _advance(rt: Runtime, partition: int, ts: float) -> None:
    """Move the partition's watermark and fire the due times it passed."""
    clock = _clock(rt, partition)
    if not clock.observe(ts, lateness_s=rt.time.lateness_s) or clock.watermark is None:
        return
    metrics.WATERMARK.labels(str(partition)).set(clock.watermark)
    assert rt.due is not None and rt.clocks_table is not None
    index = DueIndex(rt.due, partition, rt.time.due_bucket_s)
    due, next_bucket = index.pop_due(clock.watermark, clock.next_due_bucket)
    if next_bucket != clock.next_due_bucket:
        clock.next_due_bucket = next_bucket
        rt.clocks_table[str(partition)] = clock.to_dict()
    for member in due:
        metrics.DUE_FIRED.inc()
        profile = _load(rt, member)
        if profile is None:
            continue
        woken = on_due(profile, clock.watermark, index, rt.step, _scorers(rt))
        if woken is not None:
            _store(rt, profile)
            await _publish_changes(rt, profile, woken.transitions)
            await _send_labelled(rt, woken.labelled)
            await _send_outcomes(rt, woken.outcomes)


def _step(rt: Runtime, partition: int, profile: Profile, facts: EventFacts) -> StepResult | None:
    """Apply one event to the live profile (no I/O); the result if it was applied."""
    assert rt.due is not None
    result = on_event(
        profile,
        facts,
        watermark=_clock(rt, partition).watermark,
        due=DueIndex(rt.due, partition, rt.time.due_bucket_s),
        cfg=rt.step,
        catalog=rt.catalog,
        models=_scorers(rt),
    )
    if result.outcome is Applied.duplicate:
        metrics.EVENTS_DUPLICATE.inc()
        return None
    if result.outcome is Applied.late:
        metrics.EVENTS_LATE.inc()
        return None
    metrics.EVENTS_APPLIED.inc()
    metrics.EVENTS_BACKFILL.inc(result.backfill)
    if result.moved is not None:
        old, new = result.moved
        metrics.SEGMENT_MOVES.labels("none" if old is None else str(old), str(new)).inc()
    return result


async def _emit(rt: Runtime, profile: Profile, result: StepResult, ts: float, arrived_ms: int) -> None:
    """Publish what an applied event caused (after the profile is stored)."""
    metrics.PROCESSING_LATENCY.observe(max(0.0, time.time() - arrived_ms / 1000))
    await _publish_changes(rt, profile, result.transitions)
    if result.sample is not None:
        metrics.TRAINING_SAMPLES.inc()
        await _train(rt, "segmentation", result.sample, ts)
    await _send_labelled(rt, result.labelled)
    await _send_outcomes(rt, result.outcomes)
    if result.interaction is not None:
        await _train(rt, "similarity", result.interaction, ts)
    if result.verdict is not None:
        await _log_decision(rt, profile, result.verdict)
    if result.decision is not None:
        await _publish(rt, profile, result.decision, arrived_ms)


def _erased(rt: Runtime, canonical: str) -> bool:
    """Whether ``canonical`` is on the suppression list (it was erased: never rebuild it)."""
    return erased_key(canonical, rt.erase_salt) in rt.erased


async def _on_event(rt: Runtime, partition: int, msg: dict[str, Any]) -> None:
    canonical = msg["canonical"]
    profile = _load(rt, canonical)
    if profile is None:  # an erased id never has a profile: only a new one needs the list
        if _erased(rt, canonical):
            metrics.ERASED_EVENTS_DROPPED.inc()
            return
        profile = _cache(rt, Profile(canonical))
    if profile.merged_into is not None:  # an anonymous id folded into a user: forward
        await hop(rt, {**msg, "canonical": profile.merged_into, "via": canonical})
        return
    facts = EventFacts.from_dict(msg["facts"])
    via = msg.get("via")
    if needs_merge_first(profile, via):
        assert via is not None
        if park(profile, via, msg["facts"]):
            _store(rt, profile)
        else:
            metrics.EVENTS_PARK_OVERFLOW.inc()
    else:
        result = _step(rt, partition, profile, facts)
        if result is not None:
            _store(rt, profile)  # before any await (see _load)
            await _emit(rt, profile, result, facts.ts, msg["arrived_ms"])
    await _advance(rt, partition, facts.ts)


async def _log_decision(rt: Runtime, profile: Profile, verdict: Verdict) -> None:
    if rt.no_send:
        return
    record = to_record(profile.canonical, verdict, profile)
    await rt.decisions.send(key=record.user_id.encode(), value=record.model_dump_json().encode())
    metrics.DECISIONS.labels(record.outcome).inc()


async def _publish(rt: Runtime, profile: Profile, decision: Decision, arrived_ms: int) -> None:
    if rt.no_send:
        metrics.ACTIONS_SUPPRESSED.inc()
        return
    action = to_action(profile.canonical, decision, profile)
    await rt.actions.send(key=action.user_id.encode(), value=action.model_dump_json().encode())
    metrics.ACTIONS_PUBLISHED.labels(action.action_type, action.channel).inc()
    metrics.ACTION_LATENCY.observe(max(0.0, time.time() - arrived_ms / 1000))
    metrics.ACTION_HOLD.observe(decision.hold_s)


async def _on_link(rt: Runtime, canonical: str, target: str) -> None:
    if _erased(rt, canonical):  # a late event linked it again: undo the identity link
        _forget_identity(rt, canonical)
        return
    anon = _load(rt, canonical, create=True)
    assert anon is not None
    if anon.merged_into is None:
        anon.merged_into = target
        _store(rt, anon)
    # (re-)send: a crash may have lost an earlier send; merging is idempotent at the target
    state = anon.to_dict()
    state["merged_into"] = None
    await hop(rt, {"kind": "merge", "canonical": anon.merged_into, "profile": state})


async def _on_merge(rt: Runtime, partition: int, canonical: str, source: dict[str, Any]) -> None:
    if _erased(rt, canonical):  # a late link to an erased user: erase the anonymous side too
        await hop(
            rt, {"kind": "erase", "canonical": source["canonical"], "at": source.get("last_seen") or 0.0}
        )
        return
    profile = _load(rt, canonical, create=True)
    assert profile is not None
    anon = Profile.from_dict(source)
    if not merge_into(profile, anon):
        return
    metrics.PROFILES_MERGED.inc()
    assert rt.due is not None
    woken = on_merged(
        profile,
        _clock(rt, partition).watermark,
        DueIndex(rt.due, partition, rt.time.due_bucket_s),
        rt.step,
        _scorers(rt),
    )
    # the parked events are applied before the one store, so a crash keeps them or the merge whole
    applied = [
        (r, f.ts) for f in take_parked(profile, anon.canonical) if (r := _step(rt, partition, profile, f))
    ]
    _store(rt, profile)  # before any await (see _load)
    await _publish_changes(rt, profile, woken.transitions)
    await _send_labelled(rt, woken.labelled)
    await _send_outcomes(rt, woken.outcomes)
    now_ms = int(time.time() * 1000)
    for result, ts in applied:
        await _emit(rt, profile, result, ts, now_ms)


async def _on_consent(rt: Runtime, canonical: str, channel: str, granted: bool, at: float) -> None:
    if _erased(rt, canonical):
        return
    profile = _load(rt, canonical, create=True)
    assert profile is not None
    update = on_consent(profile, channel, granted, at)
    if update.changed:
        _store(rt, profile)
        metrics.CONSENT_CHANGES.labels(channel, str(granted).lower()).inc()
        await _cancel(rt, profile, update.cancelled, at, f"consent revoked on {channel}")


async def _on_feedback(rt: Runtime, msg: dict[str, Any]) -> None:
    profile = _load(rt, msg["canonical"], create=False)
    if profile is not None and profile.merged_into:  # an anonymous user's action, answered after login
        await hop(rt, {**msg, "canonical": profile.merged_into})
        return
    kind, channel = msg["feedback"], msg["channel"]
    update = on_feedback(profile, kind, msg["action_id"], channel, msg["at"]) if profile else None
    metrics.FEEDBACK.labels(kind, str(bool(update and update.changed)).lower()).inc()
    if profile is not None and update is not None and update.changed:
        _store(rt, profile)
        await _cancel(rt, profile, update.cancelled, msg["at"], f"unsubscribed from {channel}")


async def _cancel(
    rt: Runtime, profile: Profile, sends: tuple[tuple[Any, ...], ...], at: float, why: str
) -> None:
    """Publish ``action_cancelled`` for sends withdrawn before their send time."""
    for send in sends:
        cancel = to_cancelled(profile.canonical, send, at, why)
        await rt.actions.send(key=cancel.user_id.encode(), value=cancel.model_dump_json().encode())
        metrics.ACTIONS_CANCELLED.labels(cancel.action_type, cancel.channel).inc()


def _forget_identity(rt: Runtime, canonical: str) -> None:
    """Delete an anonymous id's identity link (its table entry lives on this same partition)."""
    if canonical.startswith(ANON) and routing_id(canonical) in rt.identity:
        del rt.identity[routing_id(canonical)]


async def _on_erase(rt: Runtime, partition: int, canonical: str, at: float) -> None:
    """Delete everything keyed by ``canonical`` on this partition, suppress it, withdraw its
    waiting actions, and pass the erase on to every anonymous id merged into it."""
    rt.erased[erased_key(canonical, rt.erase_salt)] = repr(at).encode()
    _forget_identity(rt, canonical)
    profile = _load(rt, canonical)
    if profile is None:
        metrics.ERASED.labels("absent").inc()
        return
    waiting = on_erase(profile, at)
    if profile.due_at is not None:
        assert rt.due is not None
        DueIndex(rt.due, partition, rt.time.due_bucket_s).unschedule(canonical, profile.due_at)
    rt.profile_cache.pop(canonical, None)
    if canonical in rt.profiles:
        del rt.profiles[canonical]  # a tombstone on the changelog
    rt.mirror.delete(canonical)
    metrics.ERASED.labels("deleted").inc()
    await _cancel(rt, profile, waiting, at, "the user asked to be erased")
    if canonical.startswith(USER):  # tombstone the compacted consent records of the user's channels
        for channel in profile.consent:
            await rt.consent.send(key=f"{routing_id(canonical)}:{channel}".encode(), value=None)
    for anon in profile.merged_from:
        await hop(rt, {"kind": "erase", "canonical": anon, "at": at})


async def handle(rt: Runtime, partition: int, msg: dict[str, Any]) -> None:
    """Process one user-stage message on ``partition`` (which owns ``msg["canonical"]``)."""
    if rt.policy_ready is not None and not rt.policy_ready.is_set():
        await rt.policy_ready.wait()  # the contact policy in force must be known before deciding
    kind = msg.get("kind")
    try:
        if kind == "event":
            await _on_event(rt, partition, msg)
        elif kind == "link":
            await _on_link(rt, msg["canonical"], msg["target"])
        elif kind == "merge":
            await _on_merge(rt, partition, msg["canonical"], msg["profile"])
        elif kind == "consent":
            await _on_consent(rt, msg["canonical"], msg["channel"], msg["granted"], msg["at"])
        elif kind == "feedback":
            await _on_feedback(rt, msg)
        elif kind == "erase":
            await _on_erase(rt, partition, msg["canonical"], msg["at"])
        else:
            raise ValueError(f"unknown user-stream message kind {kind!r}")
    except Exception:
        # the cached profile may hold a half-applied change the table never got: drop it
        rt.profile_cache.pop(msg.get("canonical", ""), None)
        raise


def forget_clocks(rt: Runtime) -> None:
    """Drop in-memory clocks and cached profiles (after a rebalance they reload from the tables)."""
    rt.clocks.clear()
    rt.profile_cache.clear()


async def resync_mirror(rt: Runtime) -> int:
    """Re-mirror every profile this worker owns (after table recovery: Redis may be stale)."""
    count = 0
    for key, raw in list(rt.profiles.items()):
        if raw is None:
            continue
        rt.mirror.put(key, Profile.loads(raw))
        count += 1
    return count


def register(app: Any, rt: Runtime) -> None:
    @app.agent(rt.user_stream, name="users")
    async def users(stream: Any) -> None:
        async def one(m: Any, value: bytes | None) -> None:
            await handle(rt, m.partition, orjson.loads(value or b"null"))

        await each_event(stream, rt.dlq, one)
