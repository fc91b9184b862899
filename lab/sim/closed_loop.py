"""The closed loop: simulated users receive actions and respond, with a known response model.

Runs in one process, deterministic for a seed: the world advances a day, the policy sees that
day's records in delivery order and may act; a sent action is delivered, opened, clicked, may
unsubscribe the user from that channel (a consent revocation), adds to their fatigue (which
raises their churn hazard), and with the true extra probability causes a purchase of the
recommended item within two days. Users who would have bought anyway still do: the organic
behaviour goes on. An action is delivered at its ``send_at`` (else at once); the user's local
hour then changes their response. Users in the control group (a deterministic share by hash) are decided for
and logged, never sent.

:class:`ResponseModel` is the truth: ``p_extra(persona, action_type, channel, offer, local hour)``, the real
uplift, written out by :meth:`ResponseModel.table` so that a policy can be scored against the
best possible one.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from lab.sim.world import PERSONA_BY_NAME, PERSONAS, UserState, World, WorldConfig
from schemas.action_catalog import ACTION_TYPES
from schemas.vocabulary import CHANNELS, DAY, HOUR


@dataclass(frozen=True, slots=True)
class ResponseModel:
    """How simulated users truly respond to a sent action (version ``response-v1``)."""

    base: dict[str, float] = field(
        default_factory=lambda: {
            "binge_learner": 0.06,
            "casual_browser": 0.01,
            "career_upskiller": 0.05,
            "sharer": 0.03,
            "bargain_hunter": 0.02,
        }
    )
    action_factor: dict[str, float] = field(
        default_factory=lambda: {
            "recommend_item": 1.0,
            "winback_offer": 1.4,
            "onboarding_nudge": 0.6,
            "abandoned_view_reminder": 1.6,
            "upsell_membership": 0.5,
            "share_reward": 0.4,
        }
    )
    channel_factor: dict[str, float] = field(
        default_factory=lambda: {
            "app": 1.0,
            "web": 0.6,
            "wechat": 1.2,
            "weibo": 0.5,
            "douyin": 0.5,
            "zhihu": 0.6,
            "email": 0.7,
            "sms": 0.8,
        }
    )
    offer_sensitivity: dict[str, float] = field(
        default_factory=lambda: {
            "binge_learner": 0.2,
            "casual_browser": 0.5,
            "career_upskiller": 0.3,
            "sharer": 0.5,
            "bargain_hunter": 2.0,
        }
    )
    open_p: dict[str, float] = field(
        default_factory=lambda: {
            "app": 0.35,
            "web": 0.15,
            "wechat": 0.45,
            "weibo": 0.2,
            "douyin": 0.2,
            "zhihu": 0.2,
            "email": 0.2,
            "sms": 0.3,
        }
    )
    unsubscribe_p: float = 0.01
    night_factor: float = 0.3
    """Sent in the user's night (local 23:00 to 07:00): mostly unseen."""
    peak_factor: float = 1.2
    """Sent within two hours of the user's usual peak hour."""
    version: str = "response-v1"

    def timing(self, persona: str, local_hour: float | None) -> float:
        if local_hour is None:
            return 1.0
        if local_hour >= 23 or local_hour < 7:
            return self.night_factor
        peak = PERSONA_BY_NAME[persona].peak_hour
        distance = min(abs(local_hour - peak), 24 - abs(local_hour - peak))
        return self.peak_factor if distance <= 2 else 1.0

    def p_extra(
        self,
        persona: str,
        action_type: str,
        channel: str,
        offer_value: float = 0.0,
        local_hour: float | None = None,
    ) -> float:
        """True extra probability that the action causes a purchase (the uplift), given when it is
        sent in the user's local time (``None``: a neutral hour)."""
        boost = 1 + self.offer_sensitivity[persona] * min(offer_value, 100.0) / 100
        p = self.base[persona] * self.action_factor[action_type] * self.channel_factor[channel] * boost
        return min(0.9, p * self.timing(persona, local_hour))

    def table(self) -> dict[str, Any]:
        """Uplift per persona x action x channel at a neutral hour, and the timing factors."""
        return {
            "neutral_hour": {
                p.name: {a: {c: round(self.p_extra(p.name, a, c), 6) for c in CHANNELS} for a in ACTION_TYPES}
                for p in PERSONAS
            },
            "timing": {
                "night_hours": "23:00-07:00 local",
                "night_factor": self.night_factor,
                "peak_window_hours": 2,
                "peak_factor": self.peak_factor,
                "peak_hour": {p.name: p.peak_hour for p in PERSONAS},
            },
        }


@dataclass(frozen=True, slots=True)
class ActionRequest:
    action_type: str
    channel: str
    item_id: str | None = None
    offer_value: float = 0.0
    action_id: str | None = None
    """The policy's own id for the action (feedback names it); else the loop makes one."""
    treated: bool | None = None
    """The policy's own control-group draw (``False``: log, do not send); else the loop's."""
    send_at: float | None = None
    """When the action is delivered (the policy's ``send_at``); else at once."""
    user_id: str | None = None
    """Whom it is for (a policy that stitches identities may act on another event's user); else
    the event's user."""


@dataclass(slots=True)
class Decision:
    user_id: str
    persona: str
    at: float
    request: ActionRequest
    treated: bool
    action_id: str
    local_hour: float
    """The user's local hour when the action was (or would have been) sent."""
    converted: bool = False
    caused: bool = False
    """The action caused a purchase (the true response model drew one, and the user could buy)."""


Policy = Callable[[dict[str, Any], float], ActionRequest | list[ActionRequest] | None]
"""``policy(event value, event time) -> actions``, called on each delivered event, anonymous
ones (no ``user_id``) included."""


def in_control(user_id: str, share: float, salt: str = "control-v1") -> bool:
    """Deterministic control-group membership by hash."""
    h = int.from_bytes(hashlib.sha256(f"{salt}|{user_id}".encode()).digest()[:8], "big")
    return h / 2**64 < share


@dataclass
class ClosedLoopResult:
    decisions: list[Decision]
    feedback: list[dict[str, Any]]
    truth: dict[str, Any]

    def conversion(self, treated: bool) -> tuple[int, int]:
        d = [x for x in self.decisions if x.treated == treated]
        return sum(x.converted for x in d), len(d)


def run_closed_loop(
    config: WorldConfig,
    policy: Policy,
    *,
    control_share: float = 0.5,
    window_s: float = 3 * DAY,
    response: ResponseModel | None = None,
    on_record: Callable[[Any], None] | None = None,
) -> ClosedLoopResult:
    """Run the world with ``policy`` in the loop; conversions are purchases of the recommended
    item within ``window_s`` of the decision, measured from the stream like any purchase."""
    response = response or ResponseModel()
    world = World(config)
    decisions: list[Decision] = []
    feedback: list[dict[str, Any]] = []
    open_decisions: dict[str, list[Decision]] = defaultdict(list)
    while world.day < config.days:
        for rec in world.advance():
            if on_record is not None:
                on_record(rec)
            value = rec.value
            if not rec.topic.startswith("events."):
                continue
            ts = datetime.fromisoformat(value["occurred_at"].replace("Z", "+00:00")).timestamp()
            uid = value.get("user_id")
            if isinstance(uid, str) and value["type"] == "purchase":
                for d in open_decisions.get(uid, []):
                    if d.at < ts <= d.at + window_s and value.get("item_id") == d.request.item_id:
                        d.converted = True
            out = policy(value, ts)
            for request in [out] if isinstance(out, ActionRequest) else out or ():
                target = request.user_id or uid
                u = world.user(target) if isinstance(target, str) else None
                if u is None or not isinstance(target, str):
                    continue
                at = request.send_at if request.send_at is not None else ts
                d = Decision(
                    target,
                    u.persona.name,
                    at,
                    request,
                    request.treated if request.treated is not None else not in_control(target, control_share),
                    request.action_id or f"{target}-{len(decisions)}",
                    local_hour=(at / HOUR + u.tz_offset_h) % 24,
                )
                decisions.append(d)
                open_decisions[target] = [x for x in open_decisions[target] if x.at + window_s >= ts] + [d]
                if d.treated:
                    feedback.extend(_send(world, u, d, response))
    truth = {
        "response_model": response.version,
        "uplift": response.table(),
        "control_share": control_share,
        "window_s": window_s,
    }
    return ClosedLoopResult(decisions, feedback, truth)


def _send(world: World, u: UserState, d: Decision, response: ResponseModel) -> list[dict[str, Any]]:
    rng, req, t = u.rng, d.request, d.at
    u.messages.append(t)
    out = []

    def fb(kind: str, at: float) -> None:
        value = {
            "action_id": d.action_id,
            "user_id": u.user_id,
            "channel": req.channel,
            "kind": kind,
            "at": datetime.fromtimestamp(at, UTC).isoformat().replace("+00:00", "Z"),
        }
        out.append(value)
        world.deliver(at, "marketing.feedback", u.user_id, value)

    fb("delivered", t + 1)
    if rng.random() < response.open_p[req.channel]:
        fb("opened", t + rng.uniform(60, 6 * HOUR))
    if rng.random() < response.unsubscribe_p:
        fb("unsubscribed", t + rng.uniform(60, HOUR))
        u.consent[req.channel] = False
    p_extra = response.p_extra(u.persona.name, req.action_type, req.channel, req.offer_value, d.local_hour)
    if req.item_id and rng.random() < p_extra:
        d.caused = world.inject_purchase(u, req.item_id, t + rng.uniform(HOUR, 2 * DAY), req.channel)
    return out
