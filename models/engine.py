"""The engine: every per-user rule of the service, in one place, pure.

A driver (the worker's Faust agents, an offline evaluator, a test harness) hands the engine the
inbound messages of one partition, in order, with a :class:`UserStore` over that partition's
state, and gets back typed effects to carry out: messages for other partitions (:class:`Hop`),
records to publish (:class:`PublishAction`, :class:`LogDecision`, :class:`PublishCancel`,
:class:`PublishLifecycle`, :class:`TombstoneConsent`), training samples (:class:`Train`),
decision outcomes (:class:`Outcome`), events given up on (:class:`Refused`: the driver
dead-letters them) and metric deltas (:class:`Count`). State writes go
through the store as they happen, before the engine returns, so a driver that writes the store
before it awaits anything never lets another reader see a stale copy.

What lives here and nowhere else:

* identity stitching (:meth:`Engine.ingest`): the first link of an anonymous id wins; an event
  that carries both ids (re-)links the anonymous profile to its user;
* forwarding, parking and merging: an event of an anonymous id already folded into a user is
  forwarded to the user; there it waits (parked) until the anonymous profile's merge has
  arrived, and the merge applies the parked events;
* clocks: an ingress event dated more than ``max_future_skew_s`` after its record timestamp is
  refused (``future_dated``); the partition's event-time watermark (moved only by
  ``watermark_support`` events, :mod:`models.clock`) fires the due-time index; an event older
  than its user's dedupe window is refused (``late``);
* consent, sender feedback, erase (with the hashed suppression list) and the step itself
  (:mod:`models.user_step`).

The user-stream messages (:data:`UserMsg`) are a discriminated union of typed records;
:func:`to_wire` and :func:`from_wire` give their stored form, the same JSON objects the worker
has always written to ``nba.user-stream``, so a topic written before this module still reads.

Clock: event time throughout (the partition watermark, ``facts.ts``, each message's ``at``);
``arrived_ms`` is the record timestamp (the producer's wall clock): it bounds how far ahead of
it an event may be dated, and is carried through for latency metrics; ``0`` means unknown
(offline drivers), and the skew rule is then off.

Examples
--------
>>> from models.engine import Engine, EngineConfig, MemoryStore, EventMsg
>>> from models.facts import EventFacts
>>> engine, store = Engine(EngineConfig()), MemoryStore()
>>> views = [EventMsg("u:1", EventFacts(event_id=f"e{i}", type="view", channel="app", ts=float(i),
...                                      item_id="c"), 0) for i in range(3)]
>>> effects = engine.handle(store, 0, views)
>>> [type(e).__name__ for e in effects if isinstance(e, PublishAction)], store.profile("u:1").events
(['PublishAction'], 3)
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from models.attribution import learnable
from models.catalog import CatalogEntry
from models.churn import Labelled
from models.clock import PartitionClock, too_far_ahead
from models.contact import Send
from models.decision import Decision, Verdict
from models.due import DueIndex
from models.facts import EventFacts
from models.identity import ANON, USER, LinkOutcome, anon_key, erased_key, resolve, routing_id, user_key
from models.lifecycle import Transition
from models.profile import Applied, Profile, merge_into, needs_merge_first, park, take_parked
from models.user_step import (
    NO_MODELS,
    Scorers,
    StepConfig,
    StepResult,
    Woken,
    on_consent,
    on_due,
    on_erase,
    on_event,
    on_feedback,
    on_merged,
)
from schemas.dlq import Reason
from schemas.feedback import Feedback
from schemas.training import UpliftSample
from schemas.users import ConsentEvent, EraseRequest

# -- the user-stream messages ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventMsg:
    """Apply an event to ``canonical`` (``via``: forwarded from that merged anonymous id)."""

    canonical: str
    facts: EventFacts
    arrived_ms: int
    via: str | None = None
    kind: Literal["event"] = "event"


@dataclass(frozen=True, slots=True)
class LinkMsg:
    """Fold the anonymous profile ``canonical`` into the user ``target`` (sent to the anonymous id)."""

    canonical: str
    target: str
    kind: Literal["link"] = "link"


@dataclass(frozen=True, slots=True)
class MergeMsg:
    """Receive a folded anonymous profile (its stored form; sent to the user)."""

    canonical: str
    profile: Mapping[str, Any]
    kind: Literal["merge"] = "merge"


@dataclass(frozen=True, slots=True)
class ConsentMsg:
    """A consent change of one channel."""

    canonical: str
    channel: str
    granted: bool
    at: float
    kind: Literal["consent"] = "consent"

    @classmethod
    def of(cls, change: ConsentEvent) -> ConsentMsg:
        """The message of a validated ``users.consent`` record."""
        return cls(user_key(change.user_id), change.channel, change.granted, change.at.timestamp())


@dataclass(frozen=True, slots=True)
class FeedbackMsg:
    """A sender's feedback on one action."""

    canonical: str
    feedback: str
    action_id: str
    channel: str
    at: float
    kind: Literal["feedback"] = "feedback"

    @classmethod
    def of(cls, fb: Feedback) -> FeedbackMsg:
        """The message of a validated ``marketing.feedback`` record (an action may have gone to
        an anonymous id)."""
        canonical = user_key(fb.user_id) if fb.user_kind == "user" else anon_key(fb.user_id)
        return cls(canonical, fb.kind.value, fb.action_id, fb.channel, fb.at.timestamp())


@dataclass(frozen=True, slots=True)
class EraseMsg:
    """Delete ``canonical`` (a user, or an anonymous id merged into an erased user)."""

    canonical: str
    at: float
    kind: Literal["erase"] = "erase"

    @classmethod
    def of(cls, request: EraseRequest) -> EraseMsg:
        """The message of a validated ``users.erase`` record."""
        return cls(user_key(request.user_id), request.at.timestamp())


UserMsg = EventMsg | LinkMsg | MergeMsg | ConsentMsg | FeedbackMsg | EraseMsg
"""Every message of the user stream, discriminated by ``kind``."""


class UnknownMessage(ValueError):
    """A user-stream message of no known kind, or missing a field its kind needs."""


def to_wire(msg: UserMsg) -> dict[str, Any]:
    """The stored (JSON) form of a message, as ``nba.user-stream`` has always carried it.

    >>> to_wire(LinkMsg("a:d1", "u:1"))
    {'kind': 'link', 'canonical': 'a:d1', 'target': 'u:1'}
    >>> from_wire(to_wire(EraseMsg("u:1", 5.0)))
    EraseMsg(canonical='u:1', at=5.0, kind='erase')
    """
    if isinstance(msg, EventMsg):
        out: dict[str, Any] = {
            "kind": "event",
            "canonical": msg.canonical,
            "facts": msg.facts.to_dict(),
            "arrived_ms": msg.arrived_ms,
        }
        if msg.via is not None:
            out["via"] = msg.via
        return out
    if isinstance(msg, LinkMsg):
        return {"kind": "link", "canonical": msg.canonical, "target": msg.target}
    if isinstance(msg, MergeMsg):
        return {"kind": "merge", "canonical": msg.canonical, "profile": dict(msg.profile)}
    if isinstance(msg, ConsentMsg):
        return {
            "kind": "consent",
            "canonical": msg.canonical,
            "channel": msg.channel,
            "granted": msg.granted,
            "at": msg.at,
        }
    if isinstance(msg, FeedbackMsg):
        return {
            "kind": "feedback",
            "canonical": msg.canonical,
            "feedback": msg.feedback,
            "action_id": msg.action_id,
            "channel": msg.channel,
            "at": msg.at,
        }
    return {"kind": "erase", "canonical": msg.canonical, "at": msg.at}


def from_wire(d: Any) -> UserMsg:
    """Read a message's stored form; :class:`UnknownMessage` if it is none of :data:`UserMsg`."""
    if not isinstance(d, dict):
        raise UnknownMessage(f"unknown user-stream message kind {None!r}")
    kind = d.get("kind")
    try:
        if kind == "event":
            return EventMsg(
                d["canonical"], EventFacts.from_dict(d["facts"]), int(d.get("arrived_ms", 0)), d.get("via")
            )
        if kind == "link":
            return LinkMsg(d["canonical"], d["target"])
        if kind == "merge":
            return MergeMsg(d["canonical"], d["profile"])
        if kind == "consent":
            return ConsentMsg(d["canonical"], d["channel"], bool(d["granted"]), float(d["at"]))
        if kind == "feedback":
            return FeedbackMsg(d["canonical"], d["feedback"], d["action_id"], d["channel"], float(d["at"]))
        if kind == "erase":
            return EraseMsg(d["canonical"], float(d["at"]))
    except (KeyError, TypeError) as exc:
        raise UnknownMessage(f"user-stream message {kind!r} lacks {exc}") from exc
    raise UnknownMessage(f"unknown user-stream message kind {kind!r}")


# -- effects ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hop:
    """Send ``msg`` through the user stream to the partition of ``msg.canonical``."""

    msg: UserMsg


@dataclass(frozen=True, slots=True)
class PublishAction:
    """Publish an action on ``marketing.actions`` (``segment`` and ``stage`` as of the decision)."""

    canonical: str
    decision: Decision
    segment: int | None
    stage: str | None
    arrived_ms: int | None
    """Record timestamp of the triggering message (wall clock); ``None`` for a parked event."""


@dataclass(frozen=True, slots=True)
class LogDecision:
    """Publish a decision-log record on ``marketing.decisions``."""

    canonical: str
    verdict: Verdict
    segment: int | None
    stage: str | None


@dataclass(frozen=True, slots=True)
class PublishCancel:
    """Publish ``action_cancelled`` for a send withdrawn before its send time."""

    canonical: str
    send: Send
    """The contact-log entry (:mod:`models.contact`)."""
    at: float
    why: str


@dataclass(frozen=True, slots=True)
class PublishLifecycle:
    """Publish a stage change on ``users.lifecycle``."""

    change: Transition
    segment: int | None


@dataclass(frozen=True, slots=True)
class TombstoneConsent:
    """Delete the compacted consent record ``key`` (``user_id:channel``) of an erased user."""

    key: str


TrainModel = Literal["segmentation", "churn", "value", "similarity"]


@dataclass(frozen=True, slots=True)
class Train:
    """A training sample for the shared model ``model`` (``y``: its label, for labelled models)."""

    model: TrainModel
    x: Mapping[str, Any]
    at: float
    y: float | None = None
    labelled: Labelled | None = None
    """The labelled snapshot behind a churn or value sample (with the score made before the label)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """A decision outcome whose attribution is settled (:mod:`models.attribution`); learnable
    ones train the uplift model."""

    record: UpliftSample
    learnable: bool


@dataclass(frozen=True, slots=True)
class Watermark:
    """The event-time watermark of ``partition`` moved to ``at``."""

    partition: int
    at: float


@dataclass(frozen=True, slots=True)
class EventApplied:
    """An event was applied to ``canonical`` (for latency metrics and offline recorders)."""

    canonical: str
    facts: EventFacts
    arrived_ms: int | None
    result: StepResult


@dataclass(frozen=True, slots=True)
class Refused:
    """An event given up on: the driver dead-letters the message that carried it."""

    reason: Reason
    detail: str
    event_id: str


@dataclass(frozen=True, slots=True)
class Count:
    """A metric delta: ``n`` more of ``name`` (a :data:`METRICS` name) with ``labels``."""

    name: str
    labels: tuple[str, ...] = ()
    n: int = 1


Effect = (
    Hop
    | PublishAction
    | LogDecision
    | PublishCancel
    | PublishLifecycle
    | TombstoneConsent
    | Train
    | Outcome
    | Watermark
    | EventApplied
    | Refused
    | Count
)

METRICS = frozenset(
    (
        "events_consumed",
        "events_applied",
        "events_duplicate",
        "events_late",
        "events_backfill",
        "events_park_overflow",
        "identity_links",
        "identity_conflicts",
        "profiles_merged",
        "consent_changes",
        "feedback",
        "erased",
        "erased_events_dropped",
        "due_fired",
        "lifecycle_transitions",
        "segment_moves",
        "training_samples",
        "churn_labels",
        "actions_suppressed",
    )
)
"""The names a :class:`Count` may carry (the driver maps each to its metric)."""


# -- the state the engine reads and writes -----------------------------------------------------


class UserStore(Protocol):
    """One partition's state, as the engine sees it.

    ``profile`` returns the live object: the engine changes it in place and then calls
    ``put_profile``; two calls for one id between two ``put_profile`` must return the same object.
    """

    def profile(self, canonical: str) -> Profile | None: ...

    def put_profile(self, profile: Profile) -> None: ...

    def delete_profile(self, canonical: str) -> None: ...

    def link(self, anonymous_id: str) -> str | None: ...

    def put_link(self, anonymous_id: str, user_id: str) -> None: ...

    def delete_link(self, anonymous_id: str) -> None: ...

    def clock(self, partition: int) -> PartitionClock: ...

    def put_clock(self, partition: int, clock: PartitionClock) -> None: ...

    def due_entries(self) -> MutableMapping[str, list[str]]: ...

    def is_erased(self, key: str) -> bool: ...

    def put_erased(self, key: str, at: float) -> None: ...


@dataclass
class MemoryStore:
    """A :class:`UserStore` in plain dictionaries: the offline drivers' and the tests' store.

    ``live`` holds the profile objects. With ``encode`` it also keeps each profile's stored bytes
    (``dumps``) as the worker's table does, so what a test reads back is what the worker would
    have written; the offline evaluator leaves it off (encoding every profile on every event
    costs more than it tells).
    """

    encode: bool = True
    profiles: dict[str, bytes] = field(default_factory=dict)
    live: dict[str, Profile] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    clocks: dict[int, PartitionClock] = field(default_factory=dict)
    due: dict[str, list[str]] = field(default_factory=dict)
    erased: dict[str, float] = field(default_factory=dict)

    def profile(self, canonical: str) -> Profile | None:
        p = self.live.get(canonical)
        if p is None and canonical in self.profiles:
            p = self.live[canonical] = Profile.loads(self.profiles[canonical])
        return p

    def put_profile(self, profile: Profile) -> None:
        self.live[profile.canonical] = profile
        if self.encode:
            self.profiles[profile.canonical] = profile.dumps()

    def delete_profile(self, canonical: str) -> None:
        self.live.pop(canonical, None)
        self.profiles.pop(canonical, None)

    def link(self, anonymous_id: str) -> str | None:
        return self.links.get(anonymous_id)

    def put_link(self, anonymous_id: str, user_id: str) -> None:
        self.links[anonymous_id] = user_id

    def delete_link(self, anonymous_id: str) -> None:
        self.links.pop(anonymous_id, None)

    def clock(self, partition: int) -> PartitionClock:
        return self.clocks.setdefault(partition, PartitionClock())

    def put_clock(self, partition: int, clock: PartitionClock) -> None:
        self.clocks[partition] = clock

    def due_entries(self) -> MutableMapping[str, list[str]]:
        return self.due

    def is_erased(self, key: str) -> bool:
        return key in self.erased

    def put_erased(self, key: str, at: float) -> None:
        self.erased[key] = at


# -- the engine --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """What the engine needs besides the step's own rules (plain values: no settings object)."""

    step: StepConfig = field(default_factory=StepConfig)
    lateness_s: float = 300.0
    """How far behind the newest event time of a partition its watermark runs (event time)."""
    watermark_support: int = 3
    """Event times needed at or past a watermark before it moves there (:mod:`models.clock`)."""
    max_future_skew_s: float = 600.0
    """An ingress event dated more than this after its record timestamp is refused."""
    due_bucket_s: float = 3600.0
    erase_salt: bytes = b""
    """Key of the suppression list's hash."""
    publish: bool = True
    """``False`` (no-send mode, rebuilding state): decisions, actions and stage changes are
    counted but not published."""


class Engine:
    """The per-user core: inbound messages of one partition in, typed effects out.

    ``catalog`` and ``models`` are read at every call (a driver may swap them: new snapshots, a
    catalog update, a policy change through ``cfg``). ``observe``, if given, is called with the
    profile and the event just before each event is applied: an offline recorder's look at the
    state an event meets (it must not change either).
    """

    def __init__(
        self,
        cfg: EngineConfig,
        catalog: Mapping[str, CatalogEntry] | None = None,
        models: Scorers = NO_MODELS,
        observe: Callable[[Profile, EventFacts], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.catalog: Mapping[str, CatalogEntry] = catalog if catalog is not None else {}
        self.models = models
        self.observe = observe

    # -- ingress: identity ---------------------------------------------------------------------
    def ingest(
        self,
        store: UserStore,
        partition: int,
        key: bytes | None,
        facts: EventFacts,
        user_id: str | None,
        anonymous_id: str | None,
        arrived_ms: int,
    ) -> list[Effect]:
        """An accepted ingress event (on the partition of its key): resolve its identity, link an
        anonymous id to its user, and apply it here if this partition owns its user, else hop."""
        out: list[Effect] = [Count("events_consumed", (facts.channel, facts.type))]
        if too_far_ahead(facts.ts, arrived_ms, self.cfg.max_future_skew_s):
            ahead = facts.ts - arrived_ms / 1000
            out.append(
                Refused(
                    Reason.future_dated,
                    f"occurred_at is {ahead:.0f}s after the record timestamp (allowed skew "
                    f"{self.cfg.max_future_skew_s:.0f}s): the producer's clock is wrong",
                    facts.event_id,
                )
            )
            return out
        res = resolve(user_id, anonymous_id, store.link(anonymous_id) if anonymous_id else None)
        if res.outcome is LinkOutcome.new:
            assert anonymous_id is not None and user_id is not None
            store.put_link(anonymous_id, user_id)
            out.append(Count("identity_links"))
        msgs: list[UserMsg] = []
        if res.outcome in (LinkOutcome.new, LinkOutcome.known):
            # (re-)link on every event that carries both ids: a crash can persist the identity
            # table while losing the merge message; the anonymous profile re-sends its merge
            assert anonymous_id is not None
            msgs.append(LinkMsg(anon_key(anonymous_id), res.canonical))
        if res.outcome is LinkOutcome.conflict:
            out.append(Count("identity_conflicts"))
        msgs.append(EventMsg(res.canonical, facts, arrived_ms))
        for msg in msgs:
            if key is not None and key == routing_id(msg.canonical).encode():
                out += self.handle(store, partition, [msg])
            else:
                out.append(Hop(msg))
        return out

    # -- the user stream -----------------------------------------------------------------------
    def handle(self, store: UserStore, partition: int, msgs: Sequence[UserMsg]) -> list[Effect]:
        """Apply ``msgs`` (in order, all owned by ``partition``); the effects, in order."""
        out: list[Effect] = []
        for msg in msgs:
            if isinstance(msg, EventMsg):
                self._event(store, partition, msg, out)
            elif isinstance(msg, LinkMsg):
                self._link(store, msg, out)
            elif isinstance(msg, MergeMsg):
                self._merge(store, partition, msg, out)
            elif isinstance(msg, ConsentMsg):
                self._consent(store, msg, out)
            elif isinstance(msg, FeedbackMsg):
                self._feedback(store, msg, out)
            elif isinstance(msg, EraseMsg):
                self._erase(store, partition, msg, out)
            else:  # pragma: no cover - the union is closed
                raise UnknownMessage(f"unknown user-stream message {msg!r}")
        return out

    def drain(
        self, store: UserStore, effects: list[Effect], partition_of: Callable[[str], int] = lambda _: 0
    ) -> list[Effect]:
        """For a driver that owns every partition in one process: deliver each :class:`Hop` to
        its partition (``partition_of`` its routing id) in the order sent, until none is left;
        every effect in the order produced, hops included."""
        out: list[Effect] = []
        pending = deque(effects)
        while pending:
            e = pending.popleft()
            out.append(e)
            if isinstance(e, Hop):
                partition = partition_of(routing_id(e.msg.canonical))
                pending.extend(self.handle(store, partition, [e.msg]))
        return out

    def advance(self, store: UserStore, partition: int, ts: float) -> list[Effect]:
        """Observe event time ``ts`` on ``partition`` outside any message (nothing to apply)."""
        out: list[Effect] = []
        self._advance(store, partition, ts, out)
        return out

    # -- the rules -----------------------------------------------------------------------------
    def _erased(self, store: UserStore, canonical: str) -> bool:
        return store.is_erased(erased_key(canonical, self.cfg.erase_salt))

    def _index(self, store: UserStore, partition: int) -> DueIndex:
        return DueIndex(store.due_entries(), partition, self.cfg.due_bucket_s)

    def _event(self, store: UserStore, partition: int, msg: EventMsg, out: list[Effect]) -> None:
        canonical, facts = msg.canonical, msg.facts
        profile = store.profile(canonical)
        if profile is None:  # an erased id never has a profile: only a new one needs the list
            if self._erased(store, canonical):
                out.append(Count("erased_events_dropped"))
                return
            profile = Profile(canonical)
        if profile.merged_into is not None:  # an anonymous id folded into a user: forward
            out.append(Hop(EventMsg(profile.merged_into, facts, msg.arrived_ms, via=canonical)))
            return
        if needs_merge_first(profile, msg.via):
            assert msg.via is not None
            if park(profile, msg.via, facts.to_dict()):
                store.put_profile(profile)
            else:
                out.append(Count("events_park_overflow"))
        else:
            result = self._step(store, partition, profile, facts, out)
            if result is not None:
                store.put_profile(profile)
                self._emit(profile, result, facts, msg.arrived_ms, out)
        self._advance(store, partition, facts.ts, out)

    def _step(
        self, store: UserStore, partition: int, profile: Profile, facts: EventFacts, out: list[Effect]
    ) -> StepResult | None:
        """Apply one event to the live profile; the result if it was applied."""
        if self.observe is not None:
            self.observe(profile, facts)
        result = on_event(
            profile,
            facts,
            watermark=store.clock(partition).watermark,
            due=self._index(store, partition),
            cfg=self.cfg.step,
            catalog=self.catalog,
            models=self.models,
        )
        if result.outcome is Applied.duplicate:
            out.append(Count("events_duplicate"))
            return None
        if result.outcome is Applied.late:
            out.append(Count("events_late"))
            out.append(
                Refused(
                    Reason.late,
                    f"event {facts.event_id} is older than the user's dedupe window behind their "
                    "newest event: it cannot be checked for duplicates",
                    facts.event_id,
                )
            )
            return None
        out.append(Count("events_applied"))
        if result.backfill:
            out.append(Count("events_backfill"))
        if result.moved is not None:
            old, new = result.moved
            out.append(Count("segment_moves", ("none" if old is None else str(old), str(new))))
        return result

    def _emit(
        self,
        profile: Profile,
        result: StepResult,
        facts: EventFacts,
        arrived_ms: int | None,
        out: list[Effect],
    ) -> None:
        """What an applied event caused, in the order the worker publishes it."""
        out.append(EventApplied(profile.canonical, facts, arrived_ms, result))
        self._changes(profile, result.transitions, out)
        if result.sample is not None:
            out.append(Count("training_samples"))
            out.append(Train("segmentation", result.sample, facts.ts))
        self._labelled(result.labelled, out)
        out += (Outcome(o, learnable(o)) for o in result.outcomes)
        if result.interaction is not None:
            out.append(Train("similarity", result.interaction, facts.ts))
        if result.verdict is not None and self.cfg.publish:
            out.append(LogDecision(profile.canonical, result.verdict, profile.segment, profile.stage))
        if result.decision is not None:
            if self.cfg.publish:
                out.append(
                    PublishAction(
                        profile.canonical, result.decision, profile.segment, profile.stage, arrived_ms
                    )
                )
            else:
                out.append(Count("actions_suppressed"))

    def _changes(self, profile: Profile, changes: Iterable[Transition], out: list[Effect]) -> None:
        for change in changes:
            out.append(Count("lifecycle_transitions", (change.from_stage, change.to_stage)))
            if self.cfg.publish:  # rebuilding state: marketing tools must not see replayed changes
                out.append(PublishLifecycle(change, profile.segment))

    @staticmethod
    def _labelled(labelled: Iterable[Labelled], out: list[Effect]) -> None:
        for item in labelled:
            out.append(Count("churn_labels", (item.model,)))
            out.append(Train("churn" if item.model == "churn" else "value", item.x, item.t, item.y, item))

    def _woken(self, profile: Profile, woken: Woken, out: list[Effect]) -> None:
        self._changes(profile, woken.transitions, out)
        self._labelled(woken.labelled, out)
        out += (Outcome(o, learnable(o)) for o in woken.outcomes)

    def _advance(self, store: UserStore, partition: int, ts: float, out: list[Effect]) -> None:
        """Move the partition's watermark and fire the due times it passed."""
        clock = store.clock(partition)
        if (
            not clock.observe(ts, lateness_s=self.cfg.lateness_s, support=self.cfg.watermark_support)
            or clock.watermark is None
        ):
            return
        out.append(Watermark(partition, clock.watermark))
        index = self._index(store, partition)
        due, next_bucket = index.pop_due(clock.watermark, clock.next_due_bucket)
        if next_bucket != clock.next_due_bucket:
            clock.next_due_bucket = next_bucket
            store.put_clock(partition, clock)
        for member in due:
            out.append(Count("due_fired"))
            profile = store.profile(member)
            if profile is None:
                continue
            woken = on_due(profile, clock.watermark, index, self.cfg.step, self.models)
            if woken is not None:
                store.put_profile(profile)
                self._woken(profile, woken, out)

    def _link(self, store: UserStore, msg: LinkMsg, out: list[Effect]) -> None:
        if self._erased(store, msg.canonical):  # a late event linked it again: undo the identity link
            self._forget_identity(store, msg.canonical)
            return
        anon = store.profile(msg.canonical) or Profile(msg.canonical)
        if anon.merged_into is None:
            anon.merged_into = msg.target
            store.put_profile(anon)
        # (re-)send: a crash may have lost an earlier send; merging is idempotent at the target
        state = anon.to_dict()
        state["merged_into"] = None
        assert anon.merged_into is not None
        out.append(Hop(MergeMsg(anon.merged_into, state)))

    def _merge(self, store: UserStore, partition: int, msg: MergeMsg, out: list[Effect]) -> None:
        source = msg.profile
        if self._erased(store, msg.canonical):  # a late link to an erased user: erase the anonymous side
            out.append(Hop(EraseMsg(str(source["canonical"]), float(source.get("last_seen") or 0.0))))
            return
        profile = store.profile(msg.canonical) or Profile(msg.canonical)
        anon = Profile.from_dict(dict(source))
        if not merge_into(profile, anon):
            return
        out.append(Count("profiles_merged"))
        woken = on_merged(
            profile,
            store.clock(partition).watermark,
            self._index(store, partition),
            self.cfg.step,
            self.models,
        )
        # the parked events are applied before the one store, so a crash keeps them or the merge whole
        applied = [
            (r, f)
            for f in take_parked(profile, anon.canonical)
            if (r := self._step(store, partition, profile, f, out)) is not None
        ]
        store.put_profile(profile)
        self._woken(profile, woken, out)
        for result, facts in applied:
            self._emit(profile, result, facts, None, out)

    def _consent(self, store: UserStore, msg: ConsentMsg, out: list[Effect]) -> None:
        if self._erased(store, msg.canonical):
            return
        profile = store.profile(msg.canonical) or Profile(msg.canonical)
        update = on_consent(profile, msg.channel, msg.granted, msg.at)
        if update.changed:
            store.put_profile(profile)
            out.append(Count("consent_changes", (msg.channel, str(msg.granted).lower())))
            why = f"consent revoked on {msg.channel}"
            out += (PublishCancel(profile.canonical, s, msg.at, why) for s in update.cancelled)

    def _feedback(self, store: UserStore, msg: FeedbackMsg, out: list[Effect]) -> None:
        profile = store.profile(msg.canonical)
        if profile is not None and profile.merged_into:  # an anonymous user's action, answered after login
            out.append(
                Hop(FeedbackMsg(profile.merged_into, msg.feedback, msg.action_id, msg.channel, msg.at))
            )
            return
        update = on_feedback(profile, msg.feedback, msg.action_id, msg.channel, msg.at) if profile else None
        changed = bool(update and update.changed)
        out.append(Count("feedback", (msg.feedback, str(changed).lower())))
        if profile is not None and update is not None and update.changed:
            store.put_profile(profile)
            why = f"unsubscribed from {msg.channel}"
            out += (PublishCancel(profile.canonical, s, msg.at, why) for s in update.cancelled)

    @staticmethod
    def _forget_identity(store: UserStore, canonical: str) -> None:
        """Delete an anonymous id's identity link (its entry lives on this same partition)."""
        if canonical.startswith(ANON):
            store.delete_link(routing_id(canonical))

    def _erase(self, store: UserStore, partition: int, msg: EraseMsg, out: list[Effect]) -> None:
        """Delete everything keyed by the id on this partition, suppress it, withdraw its waiting
        actions, and pass the erase on to every anonymous id merged into it."""
        canonical, at = msg.canonical, msg.at
        store.put_erased(erased_key(canonical, self.cfg.erase_salt), at)
        self._forget_identity(store, canonical)
        profile = store.profile(canonical)
        if profile is None:
            out.append(Count("erased", ("absent",)))
            return
        waiting = on_erase(profile, at)
        if profile.due_at is not None:
            self._index(store, partition).unschedule(canonical, profile.due_at)
        store.delete_profile(canonical)
        out.append(Count("erased", ("deleted",)))
        out += (PublishCancel(canonical, s, at, "the user asked to be erased") for s in waiting)
        if canonical.startswith(USER):  # tombstone the compacted consent records of the user's channels
            out += (TombstoneConsent(f"{routing_id(canonical)}:{channel}") for channel in profile.consent)
        out += (Hop(EraseMsg(anon, at)) for anon in profile.merged_from)
