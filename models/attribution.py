"""Purchases attributed to decisions within a window, in event time: the uplift model's labels.

Promises
--------
* Every decision point of the learned policy leaves an exposure in the profile
  (:class:`models.arbitration.Exposure`): the item, the action sent (or ``none``: control,
  holdout, or the policy chose nothing), the features known at the decision, and the window's
  end. Exposures live inside the profile, so they are stored, recovered, merged and erased with
  it; at most ``max_pending`` per user (the oldest is dropped first).
* A purchase of the exposure's item at event time in ``(at, until]`` (``at`` the send time, also
  for a message not sent) converts it: its outcome (``y`` true) is handed out at once. Every
  open exposure of the item converts, not only the latest: the label is "bought within the
  window", the closed loop's own measure. Last touch took the purchase from an earlier decision
  whenever a later one named the same item, an accounting that read the same action lower under
  a policy that decides more often (and the rule's value, estimated from the learned policy's
  log, low). What remains is causal: a follow-up message the policy sends for the same item
  inside the window can cause the purchase, and then credits the first decision too, so the
  uplift learned per decision includes the follow-ups the policy goes on to send (as the control
  group's estimand does). An exposure whose window the user's clock (an event, or a due time)
  has passed without one is handed out with ``y`` false.
* :func:`learnable`: the uplift model learns from treated exposures and from control and holdout
  ones (random by hash, so a clean baseline), not from decisions where the policy chose nothing
  (those follow earlier sends to the same user, whose effect would count as the baseline's); their
  outcomes still serve off-policy evaluation.
* An outcome is a plain dict, what the learner's training topic carries: ``x`` (the features
  with ``action``, ``channel`` and ``offer``, and for a sent message ``answered``: whether it was
  opened or clicked, :func:`mark_answered`), ``y``, ``decision_id``, ``group``, ``at``, and
  what was decided (``decided``, ``decided_channel``, sent or not) with the user's ``segment``,
  for the uplift report (:mod:`models.uplift_report`).

Clock: event time (the user's events and due times).
"""

from __future__ import annotations

from typing import Any

from models.arbitration import Exposure
from models.profile import MAX_PENDING, Profile

AT, UNTIL, DECISION, ITEM, ACTION, CHANNEL, OFFER, GROUP, X, DECIDED, DECIDED_CHANNEL, ANSWERED = range(12)


def expose(profile: Profile, e: Exposure, max_pending: int = MAX_PENDING) -> None:
    """Keep ``e`` until its window ends (a redelivered decision is kept once).

    >>> p = Profile("u:1")
    >>> e = Exposure("d1", "c1", "recommend_item", "app", 0.0, {"item_views": 3.0}, 10.0, 20.0, "treatment")
    >>> expose(p, e); expose(p, e); len(p.exposures)
    1
    """
    if any(s[DECISION] == e.decision_id for s in profile.exposures):
        return
    entry = [
        e.at,
        e.until,
        e.decision_id,
        e.item,
        e.action_type,
        e.channel,
        e.offer,
        e.group,
        dict(e.x),
        e.decided,
        e.decided_channel,
        0,
    ]
    profile.exposures = sorted([*profile.exposures, entry], key=lambda s: (s[AT], s[DECISION]))
    del profile.exposures[:-max_pending]


def mark_answered(profile: Profile, decision_id: str) -> bool:
    """Note that the message of ``decision_id`` was opened or clicked (its outcome will say so).

    >>> p = Profile("u:1")
    >>> expose(p, Exposure("d1", "c1", "recommend_item", "app", 0.0, {}, 10.0, 20.0, "treatment"))
    >>> mark_answered(p, "d1"), mark_answered(p, "d2"), on_time(p, 21.0)[0]["x"]["answered"]
    (True, False, 1.0)
    """
    for s in profile.exposures:
        if s[DECISION] == decision_id:
            s[ANSWERED:] = [1]
            return True
    return False


def _outcome(s: list[Any], y: bool) -> dict[str, Any]:
    x = {**s[X], "action": s[ACTION], "channel": s[CHANNEL], "offer": s[OFFER]}
    if s[GROUP] == "treatment":  # whether the message was read: the answer-rate label
        x["answered"] = float(len(s) > ANSWERED and s[ANSWERED])
    segment = s[X].get("segment", -1.0)
    return {
        "x": x,
        "y": y,
        "decision_id": s[DECISION],
        "group": s[GROUP],
        "at": s[AT],
        "decided": s[DECIDED],
        "decided_channel": s[DECIDED_CHANNEL],
        "segment": int(segment) if segment >= 0 else None,
    }


def on_purchase(profile: Profile, item: str | None, ts: float) -> list[dict[str, Any]]:
    """Outcomes a purchase of ``item`` at ``ts`` converts: every open exposure of the item.

    >>> p = Profile("u:1")
    >>> expose(p, Exposure("d1", "c1", "none", "", 0.0, {}, 10.0, 20.0, "control"))
    >>> expose(p, Exposure("d2", "c1", "recommend_item", "app", 0.0, {}, 12.0, 22.0, "treatment"))
    >>> expose(p, Exposure("d3", "c1", "recommend_item", "app", 0.0, {}, 16.0, 26.0, "treatment"))
    >>> on_purchase(p, "c2", 15.0), [(o["decision_id"], o["y"]) for o in on_purchase(p, "c1", 15.0)]
    ([], [('d1', True), ('d2', True)])
    >>> [s[DECISION] for s in p.exposures]  # d3's message is sent after the purchase: still open
    ['d3']
    """
    if item is None:
        return []
    open_ = [s for s in profile.exposures if s[ITEM] == item and s[AT] < ts <= s[UNTIL]]
    if not open_:
        return []
    converted = {s[DECISION] for s in open_}
    profile.exposures = [s for s in profile.exposures if s[DECISION] not in converted]
    return [_outcome(s, True) for s in open_]


def learnable(outcome: dict[str, Any]) -> bool:
    """Whether the uplift model learns from ``outcome`` (see the module docstring)."""
    return bool(outcome["group"] != "none")


def on_time(profile: Profile, now: float) -> list[dict[str, Any]]:
    """Outcomes whose window ended before event time ``now`` without a conversion.

    >>> p = Profile("u:1")
    >>> expose(p, Exposure("d1", "c1", "none", "", 0.0, {}, 10.0, 20.0, "control"))
    >>> on_time(p, 20.0), [o["y"] for o in on_time(p, 20.5)]
    ([], [False])
    """
    done = [s for s in profile.exposures if s[UNTIL] < now]
    if not done:
        return []
    profile.exposures = [s for s in profile.exposures if s[UNTIL] >= now]
    return [_outcome(s, False) for s in done]


def next_time(profile: Profile) -> float | None:
    """When the next window ends (a due time: a silent user's outcome must not wait for them)."""
    return min((s[UNTIL] for s in profile.exposures), default=None)
