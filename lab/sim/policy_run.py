"""The worker's engine in the closed loop, and the independent checker over what it sent.

:func:`run_worker_policy` runs a simulated world (:func:`lab.sim.closed_loop.run_closed_loop`)
with :class:`StepPolicy` in the loop. That policy drives the worker's per-user engine
(:class:`models.engine.Engine`: identity stitching, due times, consent, feedback, erase and the
step with its contact policy) over an in-memory store, fed the world's events, consent changes,
sender feedback and erase requests the way the worker's agents feed it. Afterwards,
:func:`lab.violations.check` replays the actions that went out against the consent, erase and
feedback logs of the run. It shares no code with the policy.

Report keys:
- ``policy.actions``: actions sent (treated users);
- ``policy.cancelled``: actions withdrawn by a revocation before their send time;
- ``policy.violations`` and ``policy.violations_by_rule``;
- ``policy.measured_uplift``: treated minus control conversion per decision, with its 95%
  interval (normal approximation). Treatment changes what comes after: sent users unsubscribe,
  buy, or are suppressed after ignoring messages, so they get fewer later decisions than control
  users. ``policy.measured_uplift_first`` therefore also compares each user's first decision only.
  Conversion is a purchase of the recommended item within the loop's window. The control group
  is the worker's own (``control_share`` of users by hash): control users are decided for under
  the same contact rules (a shadow send) but never sent, exactly as in the worker.

With a catalog (the learned policy), :func:`compare` scores it against the oracle, random and
rule policies at the same decision points, and :func:`control_estimate` checks what its control
group measures against the truth.

What the run does not model:
- Delivery to anonymous devices: the engine decides for anonymous profiles as the worker does,
  but the world cannot deliver to them (counted in ``policy.unreachable``).

Clock: event time (the world's).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from lab.sim.closed_loop import ActionRequest, Decision, ResponseModel, run_closed_loop
from lab.sim.world import TIMEZONES, World, WorldConfig
from lab.violations import check
from models.catalog import CatalogEntry
from models.contact import ContactRules, send_time
from models.engine import (
    ConsentMsg,
    Effect,
    Engine,
    EraseMsg,
    EventApplied,
    FeedbackMsg,
    MemoryStore,
    Outcome,
    PublishCancel,
    Train,
)
from models.facts import EventFacts
from models.identity import USER, routing_id
from models.offpolicy import Logged, logged
from models.reach import send_slots
from models.recommend import Recommender
from models.setup import Setup
from models.uplift import UpliftModel
from models.uplift_report import difference
from models.user_step import Scorers, StepConfig
from schemas.action_catalog import ActionCatalog
from schemas.feedback import Feedback
from schemas.users import ConsentEvent, EraseRequest
from schemas.validate import Accepted, ValidationPolicy, validate
from schemas.vocabulary import CHANNELS, DAY, HOUR


@dataclass(frozen=True, slots=True)
class Choice:
    """One allowed (action, channel) at a decision point, as the learned policy scored it."""

    action: str
    action_type: str
    channel: str
    offer: float
    score: float
    uplift: float
    p_convert: float
    value: float


@dataclass(frozen=True, slots=True)
class Point:
    """A decision of the learned policy with allowed choices: what it could pick and did."""

    user_id: str
    """The world's user id."""
    at: float
    send_at: float
    """When a send at once would go out (after quiet hours)."""
    policy_send_at: float | None
    slots: list[float]
    decision_id: str
    outcome: str
    allowed: tuple[Choice, ...]
    chosen: int | None
    rule_channel: str | None
    """The foundation rule's channel where it fires here, else ``None``."""
    rule_arm: int | None
    propensity: float
    explored: bool


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


class StepPolicy:
    """The worker's engine (:class:`models.engine.Engine`, over an in-memory store) as a
    closed-loop policy, with the logs the checker replays. It translates the world's records to
    engine inputs and the engine's effects to action requests; it decides nothing."""

    def __init__(
        self,
        setup: Setup,
        step: StepConfig,
        *,
        catalog: Mapping[str, CatalogEntry],
        uplift: UpliftModel | None = None,
        recommender: Recommender | None = None,
    ) -> None:
        self.cfg = step
        self.uplift = uplift
        """The learned policy's uplift model, learned here from each outcome as the learner would."""
        self.recommender = recommender
        """The similarity model, learned here from each interaction as the learner would."""
        self.engine = Engine(
            setup.engine_config(step),
            catalog,
            Scorers(recommender=recommender, uplift=uplift),
        )
        self.store = MemoryStore(encode=False)
        self.validation = ValidationPolicy(channels=frozenset(CHANNELS))
        self.actions: list[dict[str, Any]] = []
        """What went out on ``marketing.actions`` (actions and cancellations)."""
        self.consent: list[dict[str, Any]] = []
        self.feedback: list[dict[str, Any]] = []
        self.erase: list[dict[str, Any]] = []
        self.timezones: dict[str, str] = {}
        self.event_timezones: dict[str, str] = {}
        """event id -> the event's own timezone (the checker reads each send's trigger)."""
        self.cancelled = 0
        self.unreachable = 0
        """Actions for anonymous profiles (sent, but the world cannot deliver to a device)."""
        self.points: list[Point] = []
        self.outcomes: dict[str, bool] = {}
        """decision id -> whether its item was bought within the attribution window."""

    def on_record(self, rec: Any) -> None:
        """The world's consent changes, sender feedback and erase requests, as the agents route them."""
        v = rec.value
        msg: ConsentMsg | FeedbackMsg | EraseMsg | None = None
        if rec.topic == "users.consent":
            self.consent.append(v)
            msg = ConsentMsg.of(ConsentEvent.model_validate(v))
        elif rec.topic == "marketing.feedback":
            self.feedback.append(v)
            msg = FeedbackMsg.of(Feedback.model_validate(v))
        elif rec.topic == "users.erase":
            self.erase.append(v)
            msg = EraseMsg.of(EraseRequest.model_validate(v))
        if msg is not None:
            self._take(self.engine.drain(self.store, self.engine.handle(self.store, 0, [msg])))

    def __call__(self, value: dict[str, Any], ts: float) -> list[ActionRequest]:
        result = validate(
            orjson.dumps(value),
            topic_channel=value["channel"],
            topic_type=value["type"],
            policy=self.validation,
        )
        if not isinstance(result, Accepted):
            return []
        event = result.event
        if event.context is not None and event.context.timezone:
            self.timezones[event.user_id or event.anonymous_id or ""] = event.context.timezone
            self.event_timezones[event.event_id] = event.context.timezone
        facts = EventFacts.from_event(event, result.spend)
        return self._take(
            self.engine.drain(
                self.store,
                self.engine.ingest(self.store, 0, None, facts, event.user_id, event.anonymous_id, 0),
            )
        )

    def _take(self, effects: list[Effect]) -> list[ActionRequest]:
        """Learn from the effects as the learner would, log what was published, and turn each
        decision that went out (or would have, for a control user) into a request."""
        requests = []
        for e in effects:
            if isinstance(e, Outcome):
                self.outcomes[e.record.decision_id] = e.record.y
                if self.uplift is not None and e.learnable:
                    self.uplift.learn_one(e.record.x, e.record.y)
            elif isinstance(e, Train) and e.model == "similarity" and self.recommender is not None:
                self.recommender.learn_one(dict(e.x))
            elif isinstance(e, PublishCancel):
                self.actions.append(
                    {
                        "event": "action_cancelled",
                        "action_id": e.send.action_id,
                        "user_id": routing_id(e.canonical),
                    }
                )
                self.cancelled += 1
            elif isinstance(e, EventApplied) and e.result.verdict is not None:
                request = self._decided(e)
                if request is not None:
                    requests.append(request)
        return requests

    def _decided(self, e: EventApplied) -> ActionRequest | None:
        verdict, uid = e.result.verdict, routing_id(e.canonical)
        assert verdict is not None
        known = e.canonical.startswith(USER)
        if known and self.cfg.actions is not None:
            self._point(e)
        d = verdict.decision
        if d is None or verdict.outcome not in ("sent", "control"):
            return None
        treated = verdict.outcome == "sent"
        if treated:
            self.actions.append(
                {
                    "event": "action",
                    "action_id": d.action_id,
                    "user_id": uid,
                    "channel": d.channel,
                    "action_type": d.action_type,
                    "created_at": _iso(d.created_at),
                    "send_at": _iso(d.send_at),
                    "trigger_event_id": d.trigger_event_id,
                }
            )
        if not known:
            self.unreachable += treated
            return None
        return ActionRequest(
            d.action_type,
            d.channel,
            d.item_ids[0],
            offer_value=d.offer_value,
            action_id=d.action_id,
            treated=treated,
            send_at=d.send_at,
            user_id=uid,
        )

    def _point(self, e: EventApplied) -> None:
        verdict, actions, item = e.result.verdict, self.cfg.actions, e.facts.item_id
        assert verdict is not None and actions is not None
        allowed = tuple(
            Choice(c.action, c.action_type, c.channel, c.offer, c.score, c.uplift, c.p_convert, c.value)
            for c in verdict.candidates
            if not c.removed_by and c.uplift is not None and c.p_convert is not None
        )
        profile = self.store.profile(e.canonical)
        if not allowed or profile is None:
            return
        views = profile.item_views.get(item, [0, 0.0])[0] if item is not None else 0
        fires = views >= self.cfg.rule.views_threshold and item not in profile.bought
        channels = {c.channel for c in allowed}
        rule_channel = next((ch for ch in profile.channels_by_engagement() if ch in channels), None)
        rule_arm = next(
            (i for i, c in enumerate(allowed) if (spec := actions.get(c.action)) and spec.item == "viewed"),
            None,
        )
        d = verdict.decision
        chosen = next(
            (
                i
                for i, c in enumerate(allowed)
                if d is not None and (c.action, c.channel) == (d.action, d.channel)
            ),
            None,
        )
        ts = e.facts.ts
        self.points.append(
            Point(
                user_id=routing_id(e.canonical),
                at=ts,
                send_at=send_time(self.cfg.contact, ts, profile.timezone),
                policy_send_at=d.send_at if d is not None else None,
                slots=send_slots(ts, self.cfg.contact, profile.timezone, actions.timing.max_delay_hours),
                decision_id=verdict.decision_id,
                outcome=verdict.outcome,
                allowed=allowed,
                chosen=chosen,
                rule_channel=rule_channel if fires else None,
                rule_arm=rule_arm if fires else None,
                propensity=verdict.propensity,
                explored=verdict.explored,
            )
        )


@dataclass
class PolicyRun:
    figures: dict[str, Any]
    policy: StepPolicy
    truth: dict[str, Any]
    decisions: list[Decision] = field(default_factory=list)
    """The closed loop's decisions, sent or not, with what they caused (the simulator's truth)."""
    window_s: float = 3 * DAY
    """The closed loop's conversion window (a decision converts if its item is bought within it)."""

    @property
    def caused(self) -> dict[str, bool]:
        """action id -> whether the sent action caused a purchase."""
        return {d.action_id: d.caused for d in self.decisions if d.treated}


def run_policy(
    config: WorldConfig,
    setup: Setup,
    *,
    control_share: float = 0.5,
    checker_rules: ContactRules | None = None,
    actions: ActionCatalog | None = None,
    learn: bool = True,
) -> PolicyRun:
    """Run the world with the worker's engine deciding under ``setup``: the foundation rule, or
    the learned policy over ``actions`` (with its uplift model learned from outcomes unless
    ``learn`` is false, and the similarity model learned from interactions). The checker uses the
    same contact rules as the policy (with the catalog's cooldowns) unless ``checker_rules`` says
    otherwise."""
    cfg = replace(setup.step, control_share=control_share, holdouts={}, actions=actions)
    truth = World(config).truth()
    catalog = {
        i["item_id"]: CatalogEntry(
            i["title"],
            float(i["price"]),
            i["category"],
            series_id=i["series_id"],
            series_part=i["series_part"],
        )
        for i in truth["catalog"]
    }
    policy = StepPolicy(
        setup,
        cfg,
        catalog=catalog,
        uplift=setup.new_uplift(actions) if actions is not None and learn else None,
        recommender=setup.new_recommender().attach(catalog) if actions is not None else None,
    )
    res = run_closed_loop(config, policy, on_record=policy.on_record)
    rules = checker_rules or cfg.contact
    if actions is not None:
        own = {a.name: a.cooldown_days * DAY for a in actions.actions if a.cooldown_days is not None}
        rules = replace(rules, cooldown_s={**own, **rules.cooldown_s})
    violations = check(
        policy.actions,
        consent=policy.consent,
        erase=policy.erase,
        feedback=policy.feedback,
        timezones=policy.timezones,
        event_timezones=policy.event_timezones,
        rules=rules,
    )
    (ct, nt), (cc, nc) = res.conversion(True), res.conversion(False)
    first: dict[str, Any] = {}
    for d in res.decisions:
        first.setdefault(d.user_id, d)
    ft = [d.converted for d in first.values() if d.treated]
    fc = [d.converted for d in first.values() if not d.treated]
    sent = sum(1 for a in policy.actions if a["event"] == "action")
    figures = {
        "policy.actions": sent,
        "policy.cancelled": policy.cancelled,
        "policy.unreachable": policy.unreachable,
        "policy.violations": sum(violations.values()),
        "policy.violations_by_rule": {rule: n for rule, n in sorted(violations.items()) if n},
        "policy.decisions": {"treated": nt, "control": nc},
        **_uplift("policy.measured_uplift", ct, nt, cc, nc),
        **_uplift("policy.measured_uplift_first", sum(ft), len(ft), sum(fc), len(fc)),
    }
    if actions is not None:
        figures |= compare(policy.points, truth["users"], ResponseModel())
    return PolicyRun(figures, policy, truth, res.decisions, res.truth["window_s"])


def run_worker_policy(config: WorldConfig, setup: Setup, **kwargs: Any) -> dict[str, Any]:
    """:func:`run_policy`'s figures."""
    return run_policy(config, setup, **kwargs).figures


def compare(points: list[Point], users: dict[str, Any], response: ResponseModel) -> dict[str, Any]:
    """Expected incremental conversions (the true response model's uplift of what would be sent)
    of four policies at the learned policy's decision points, each choosing among the same
    allowed (action, channel) choices: the learned policy's pick at its send time (nothing counts
    0), the oracle (the choice of highest true uplift, sent at the user's true best time among the
    policy's send slots, :func:`models.reach.send_slots`), a uniformly random choice, and the
    foundation rule (``recommend_item`` on the most engaged allowed channel where it fires, else
    nothing); these two send at once (after quiet hours).

    The learned policy maximises value, not conversions: ``policy.value`` and
    ``policy.oracle_value`` (the oracle choosing by true uplift times value, less coupons, or
    nothing) compare it on its own objective; ``policy.random_value`` is the random policy's."""
    offsets = {name: offset for name, offset, _ in TIMEZONES}
    total = dict.fromkeys(
        (
            "policy.uplift",
            "policy.oracle_uplift",
            "policy.random_uplift",
            "policy.rule_uplift",
            "policy.value",
            "policy.oracle_value",
            "policy.random_value",
        ),
        0.0,
    )
    for point in points:
        user = users[point.user_id]
        allowed, (at_once, oracle, true) = point.allowed, true_uplifts(point, user, response, offsets)
        if true is not None and point.chosen is not None:
            total["policy.uplift"] += true
            total["policy.value"] += _value(true, allowed[point.chosen])
        total["policy.oracle_uplift"] += max(oracle)
        total["policy.oracle_value"] += max(0.0, *map(_value, oracle, allowed))
        total["policy.random_uplift"] += statistics.fmean(at_once)
        total["policy.random_value"] += statistics.fmean(map(_value, at_once, allowed))
        if point.rule_channel is not None:
            total["policy.rule_uplift"] += response.p_extra(
                user["persona"],
                "recommend_item",
                point.rule_channel,
                0.0,
                hour_at(point.send_at, offsets.get(user["timezone"], 8)),
            )
    out: dict[str, Any] = {k: round(v, 3) for k, v in total.items()}
    out["policy.decision_points"] = len(points)
    out["policy.explored"] = sum(1 for p in points if p.explored)
    out["policy.oracle_value_share"] = round(
        total["policy.value"] / max(total["policy.oracle_value"], 1e-9), 4
    )
    out["policy.oracle_share"] = round(total["policy.uplift"] / max(total["policy.oracle_uplift"], 1e-9), 4)
    return out


def true_uplifts(
    point: Point, user: dict[str, Any], response: ResponseModel, offsets: Mapping[str, float]
) -> tuple[list[float], list[float], float | None]:
    """At one decision point, the true uplift of each allowed choice sent at once (after quiet
    hours) and sent at the user's true best time among the policy's send slots (the oracle's), and
    of the learned policy's pick at its own send time (``None``: it picked nothing)."""
    persona, offset = user["persona"], offsets.get(user["timezone"], 8)
    allowed, now = point.allowed, hour_at(point.send_at, offset)
    at_once = [response.p_extra(persona, c.action_type, c.channel, c.offer, now) for c in allowed]
    best = max((hour_at(t, offset) for t in point.slots), key=lambda h: response.timing(persona, h))
    oracle = [response.p_extra(persona, c.action_type, c.channel, c.offer, best) for c in allowed]
    if point.chosen is None:
        return at_once, oracle, None
    c, sent_at = allowed[point.chosen], point.policy_send_at
    assert sent_at is not None
    return (
        at_once,
        oracle,
        response.p_extra(persona, c.action_type, c.channel, c.offer, hour_at(sent_at, offset)),
    )


def hour_at(t: float, offset: float) -> float:
    """Local hour of day of ``t`` at a fixed UTC offset (the simulator's timezones)."""
    return (t / 3600 + offset) % 24


def _value(uplift: float, c: Choice) -> float:
    """Incremental value of an allowed choice: its uplift times the conversion's value, less the
    coupon paid on the conversions it would be used for (the policy's own baseline estimate plus
    the uplift)."""
    return uplift * c.value - c.offer * (c.p_convert - c.uplift + uplift)


def offpolicy_log(policy: StepPolicy) -> tuple[list[Logged], list[int | None], list[bool]]:
    """The learned policy's decisions that it made itself (not control or holdout users'), whose
    attribution window has closed, as an off-policy evaluation log (rewards: conversions); at each
    the foundation rule's choice (``None``: the rule does not act there), and whether that choice
    is the one the learned policy scored highest (where the log holds the rule's choice mostly
    by exploitation, else only by exploration)."""
    log, rule, on_top = [], [], []
    for point in policy.points:
        if point.outcome not in ("sent", "no_action") or point.decision_id not in policy.outcomes:
            continue
        scored = [(c.score, c.uplift, c.p_convert) for c in point.allowed]
        reward = float(policy.outcomes[point.decision_id])
        log.append(logged(point.chosen, point.propensity, reward, scored))
        rule.append(point.rule_arm)
        top = max(range(len(scored)), key=lambda i: scored[i][0])
        on_top.append(point.rule_arm == top)
    return log, rule, on_top


def _uplift(name: str, ct: int, nt: int, cc: int, nc: int) -> dict[str, Any]:
    """Treated minus control conversion, with its 95% interval (normal approximation)."""
    uplift, lo, hi = difference(ct, nt, cc, nc)
    return {name: round(uplift, 5), f"{name}_ci95": [round(lo, 5), round(hi, 5)]}


def rule_catalog(actions: ActionCatalog) -> ActionCatalog:
    """The foundation rule written in the catalog's terms: the viewed-item actions only, no
    exploration, always sent, on the most engaged allowed channel (with no uplift model every
    choice scores the prior, every channel factor is 1, and the first allowed channel in
    engagement order wins). It keeps the catalog's timing, so it sends when the learned policy
    would: the learned policy's log, whose sends went out at those times, can evaluate it."""
    return actions.model_copy(
        update={
            "version": f"{actions.version}-rule",
            "actions": [a for a in actions.actions if a.item == "viewed"],
            "exploration": 0.0,
            "min_score": -1e9,
        }
    )


def control_estimate(run: PolicyRun) -> dict[str, Any]:
    """What the control group measures, against the simulator's truth.

    Headline (``control.estimate``): each user's *first* decision only, treated users' against
    control users'. Before it nothing was sent to anyone, so the two groups differ only by the
    hash; later decisions do not (a sent user unsubscribes, buys, or is suppressed, and gets
    other decisions than a control user). A decision converts if its item is bought within the
    loop's window after it, whatever else was sent (no last-touch attribution).

    The estimate is the share of would-be non-buyers that treatment turned into buyers,
    ``(t - c) / (1 - c)`` (t, c: the treated and control conversion), with a delta-method 95%
    interval whose variance uses Agresti-Caffo adjusted rates (a control group of 50 users often
    has no conversion, and a plain Wald interval would then ignore its uncertainty).

    In the simulator a sent user buys the item if they would have anyway or a message naming it
    causes a purchase within the window; treatment there is the first message and the follow-ups
    the policy decides for the same item (for control users too, logged and not sent). The truth
    (``control.true_uplift``) is therefore, averaged over the first decisions of both groups, the
    response model's probability that at least one of those messages causes a purchase inside the
    window: ``1 - prod(1 - p_extra * f)`` over them, with ``p_extra`` at each one's send hour and
    ``f`` the share of its purchase delay (uniform, one hour to two days after its send) that
    falls inside the window (a later-decided message may be sent earlier, when the first was
    held). ``control.first_send_uplift`` is the first message's ``p_extra`` alone.
    ``control.difference`` is the plain ``t - c``, lower by the purchases that would have happened
    anyway.

    ``control.all_*``: every decision rather than the first, labelled by the worker's attribution
    (:mod:`models.attribution`), against the mean ``p_extra`` of those decisions; biased by the
    effects above, kept to show it."""
    users_truth = run.truth["users"]
    offsets = {name: offset for name, offset, _ in TIMEZONES}
    response = ResponseModel()
    by_user: dict[str, list[Decision]] = {}
    for d in run.decisions:
        by_user.setdefault(d.user_id, []).append(d)

    def p_extra(d: Decision) -> float:
        r = d.request
        return response.p_extra(d.persona, r.action_type, r.channel, r.offer_value, d.local_hour)

    first = [ds[0] for ds in by_user.values()]
    t = [float(d.converted) for d in first if d.treated]
    c = [float(d.converted) for d in first if not d.treated]
    true, first_send = [], []
    for ds in by_user.values():
        d, end = ds[0], ds[0].at + run.window_s
        none = 1.0
        for f in ds:  # the first message and every later-decided one naming the same item
            if f.request.item_id == d.request.item_id:
                lo, hi = max(f.at + HOUR, d.at), min(f.at + 2 * DAY, end)
                none *= 1 - p_extra(f) * max(0.0, hi - lo) / (2 * DAY - HOUR)
        true.append(1 - none)
        first_send.append(p_extra(d))
    truth = statistics.fmean(true)
    pt, pc = statistics.fmean(t), statistics.fmean(c)
    est = (pt - pc) / (1 - pc)
    # the variance from Agresti-Caffo adjusted rates (one conversion and one non-conversion added
    # to each group): a group with no conversions must not read as a certain rate of zero
    at, ac = (sum(t) + 1) / (len(t) + 2), (sum(c) + 1) / (len(c) + 2)
    vt, vc = at * (1 - at) / (len(t) + 2), ac * (1 - ac) / (len(c) + 2)
    half = 1.96 * math.sqrt(vt + vc * ((1 - at) / (1 - ac)) ** 2) / (1 - ac)
    diff = _uplift("d", int(sum(t)), len(t), int(sum(c)), len(c))
    policy = run.policy
    y: dict[str, list[float]] = {"sent": [], "control": []}
    all_true: list[float] = []
    for point in policy.points:
        if point.outcome in y and point.chosen is not None and point.decision_id in policy.outcomes:
            y[point.outcome].append(float(policy.outcomes[point.decision_id]))
            user = users_truth[point.user_id]
            pick, sent_at = point.allowed[point.chosen], point.policy_send_at
            assert sent_at is not None
            hour = hour_at(sent_at, offsets.get(user["timezone"], 8))
            all_true.append(
                response.p_extra(user["persona"], pick.action_type, pick.channel, pick.offer, hour)
            )
    every = _uplift("e", int(sum(y["sent"])), len(y["sent"]), int(sum(y["control"])), len(y["control"]))
    all_truth = statistics.fmean(all_true)
    return {
        "control.estimate": round(est, 5),
        "control.estimate_ci95": [round(est - half, 5), round(est + half, 5)],
        "control.true_uplift": round(truth, 5),
        "control.covers": bool(est - half <= truth <= est + half),
        "control.first_send_uplift": round(statistics.fmean(first_send), 5),
        "control.first_send_covers": bool(est - half <= statistics.fmean(first_send) <= est + half),
        "control.users": {"treated": len(t), "control": len(c)},
        "control.converted": {"treated": int(sum(t)), "control": int(sum(c))},
        "control.difference": diff["d"],
        "control.difference_ci95": diff["d_ci95"],
        "control.difference_covers": bool(diff["d_ci95"][0] <= truth <= diff["d_ci95"][1]),
        "control.all_estimate": every["e"],
        "control.all_estimate_ci95": every["e_ci95"],
        "control.all_true_uplift": round(all_truth, 5),
        "control.all_covers": bool(every["e_ci95"][0] <= all_truth <= every["e_ci95"][1]),
    }
