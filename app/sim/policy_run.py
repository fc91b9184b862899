"""The worker's decision code in the closed loop, and the independent checker over what it sent.

:func:`run_worker_policy` runs a simulated world (:func:`app.sim.closed_loop.run_closed_loop`)
with :class:`StepPolicy` in the loop. That policy is the worker's per-user step
(:func:`models.user_step.on_event`, with its contact policy), fed the world's consent changes,
sender feedback and erase requests the way the worker's agents feed it. Afterwards,
:func:`app.violations.check` replays the actions that went out against the consent, erase and
feedback logs of the run. It shares no code with the policy.

Report keys:
- ``policy.actions``: actions sent (treated users);
- ``policy.cancelled``: actions withdrawn by a revocation before their send time;
- ``policy.violations`` and ``policy.violations_by_rule``;
- ``policy.rule_uplift``: treated minus control conversion per decision, with its 95% interval
  (normal approximation). Treatment changes what comes after: sent users unsubscribe, buy, or
  are suppressed after ignoring messages, so they get fewer later decisions than control users.
  ``policy.rule_uplift_first`` therefore also compares each user's first decision only.
  Conversion is a purchase of the recommended item within the loop's window. The control group
  is the worker's own (``control_share`` of users by hash): control users are decided for under
  the same contact rules (a shadow send) but never sent, exactly as in the worker.

What the run does not model:
- Identity stitching: only logged-in events are decided on.
- Due-time wake-ups: no watermark is passed.
- Delivery at ``send_at``: the simulated users receive an action at decision time. The
  checker, like a sender, reads ``send_at``.

Clock: event time (the world's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import orjson

from app.rules import step_config
from app.settings import ContactSettings, Settings
from app.sim.closed_loop import ActionRequest, run_closed_loop
from app.sim.world import WorldConfig
from app.violations import check
from models.due import DueIndex
from models.facts import EventFacts
from models.profile import Profile
from models.user_step import ContactUpdate, StepConfig, on_consent, on_erase, on_event, on_feedback
from schemas.validate import Accepted, ValidationPolicy, validate

CHANNELS = frozenset(("app", "web", "wechat", "weibo", "douyin", "zhihu", "email", "sms"))


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@dataclass
class StepPolicy:
    """The worker's step as a closed-loop policy, with the logs the checker replays."""

    cfg: StepConfig
    profiles: dict[str, Profile] = field(default_factory=dict)
    erased: set[str] = field(default_factory=set)
    due: DueIndex = field(default_factory=lambda: DueIndex({}, 0))
    actions: list[dict[str, Any]] = field(default_factory=list)
    consent: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    erase: list[dict[str, Any]] = field(default_factory=list)
    timezones: dict[str, str] = field(default_factory=dict)
    cancelled: int = 0
    validation: ValidationPolicy = field(default_factory=lambda: ValidationPolicy(channels=CHANNELS))

    def _profile(self, uid: str) -> Profile:
        return self.profiles.setdefault(uid, Profile(f"u:{uid}"))

    def _withdraw(self, uid: str, update: ContactUpdate) -> None:
        for send in update.cancelled:
            self.actions.append({"event": "action_cancelled", "action_id": send[3], "user_id": uid})
            self.cancelled += 1

    def on_record(self, rec: Any) -> None:
        """The world's consent changes, sender feedback and erase requests, as the agents apply them."""
        v = rec.value
        uid = v.get("user_id")
        if not isinstance(uid, str) or uid in self.erased:
            return
        if rec.topic == "users.consent":
            self.consent.append(v)
            self._withdraw(
                uid, on_consent(self._profile(uid), v["channel"], bool(v["granted"]), _ts(v["at"]))
            )
        elif rec.topic == "marketing.feedback":
            self.feedback.append(v)
            if uid in self.profiles:
                update = on_feedback(
                    self.profiles[uid], v["kind"], v["action_id"], v["channel"], _ts(v["at"])
                )
                self._withdraw(uid, update)
        elif rec.topic == "users.erase":
            self.erase.append(v)
            at = _ts(v["at"])
            profile = self.profiles.pop(uid, None)
            self.erased.add(uid)
            if profile is not None:  # its waiting sends are withdrawn, as the worker does
                self._withdraw(uid, ContactUpdate(True, on_erase(profile, at)))

    def __call__(self, value: dict[str, Any], ts: float) -> ActionRequest | None:
        uid = value.get("user_id")
        if not isinstance(uid, str) or uid in self.erased:
            return None
        result = validate(
            orjson.dumps(value),
            topic_channel=value["channel"],
            topic_type=value["type"],
            policy=self.validation,
        )
        if not isinstance(result, Accepted):
            return None
        event = result.event
        if event.context is not None and event.context.timezone:
            self.timezones[uid] = event.context.timezone
        profile = self._profile(uid)
        verdict = on_event(
            profile, EventFacts.from_event(event, result.spend), watermark=None, due=self.due, cfg=self.cfg
        ).verdict
        if verdict is None or verdict.decision is None or verdict.outcome not in ("sent", "control"):
            return None
        d = verdict.decision
        if verdict.outcome == "sent":
            self.actions.append(
                {
                    "event": "action",
                    "action_id": d.action_id,
                    "user_id": uid,
                    "channel": d.channel,
                    "action_type": d.action_type,
                    "created_at": _iso(d.created_at),
                    "send_at": _iso(d.send_at),
                }
            )
        treated = verdict.outcome == "sent"
        return ActionRequest(d.action_type, d.channel, d.item_ids[0], action_id=d.action_id, treated=treated)


def run_worker_policy(
    config: WorldConfig,
    *,
    control_share: float = 0.5,
    settings: Settings | None = None,
    checker_rules: ContactSettings | None = None,
) -> dict[str, Any]:
    """Run the world with the worker's step deciding; the figures above. The checker uses the
    same contact settings as the policy unless ``checker_rules`` says otherwise."""
    settings = settings or Settings()
    # the worker's own control group (decided and logged, never sent, no contact recorded)
    policy = StepPolicy(replace(step_config(settings), control_share=control_share, holdouts={}))
    res = run_closed_loop(config, policy, on_record=policy.on_record)
    violations = check(
        policy.actions,
        consent=policy.consent,
        erase=policy.erase,
        feedback=policy.feedback,
        timezones=policy.timezones,
        rules=checker_rules or settings.contact,
    )
    (ct, nt), (cc, nc) = res.conversion(True), res.conversion(False)
    first: dict[str, Any] = {}
    for d in res.decisions:
        first.setdefault(d.user_id, d)
    ft = [d.converted for d in first.values() if d.treated]
    fc = [d.converted for d in first.values() if not d.treated]
    sent = sum(1 for a in policy.actions if a["event"] == "action")
    return {
        "policy.actions": sent,
        "policy.cancelled": policy.cancelled,
        "policy.violations": sum(violations.values()),
        "policy.violations_by_rule": {rule: n for rule, n in sorted(violations.items()) if n},
        "policy.decisions": {"treated": nt, "control": nc},
        **_uplift("policy.rule_uplift", ct, nt, cc, nc),
        **_uplift("policy.rule_uplift_first", sum(ft), len(ft), sum(fc), len(fc)),
    }


def _uplift(name: str, ct: int, nt: int, cc: int, nc: int) -> dict[str, Any]:
    """Treated minus control conversion, with its 95% interval (normal approximation)."""
    pt, pc = ct / max(nt, 1), cc / max(nc, 1)
    se = math.sqrt(pt * (1 - pt) / max(nt, 1) + pc * (1 - pc) / max(nc, 1))
    lo, hi = pt - pc - 1.96 * se, pt - pc + 1.96 * se
    return {name: round(pt - pc, 5), f"{name}_ci95": [round(lo, 5), round(hi, 5)]}
