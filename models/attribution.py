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
* An open exposure is stored in the profile as an :class:`models.profile.OpenExposure`.
* An outcome is a :class:`schemas.training.UpliftSample`, the record the learner's training
  topic carries: ``x`` (the features with ``action``, ``channel`` and ``offer``, and for a sent
  message ``answered``: whether it was opened or clicked, :func:`mark_answered`), ``y``,
  ``decision_id``, ``group``, ``at``, and what was decided (``decided``, ``decided_channel``,
  sent or not) with the user's ``segment``, for the uplift report (:mod:`models.uplift_report`).

Clock: event time (the user's events and due times).
"""

from __future__ import annotations

from models.arbitration import Exposure
from models.profile import MAX_PENDING, OpenExposure, Profile
from schemas.training import UpliftSample


def _open(profile: Profile) -> list[OpenExposure]:
    return [OpenExposure(*s) for s in profile.exposures]


def _keep(profile: Profile, entries: list[OpenExposure]) -> None:
    profile.exposures = [list(s) for s in entries]


def expose(profile: Profile, e: Exposure, max_pending: int = MAX_PENDING) -> None:
    """Keep ``e`` until its window ends (a redelivered decision is kept once).

    >>> p = Profile("u:1")
    >>> e = Exposure("d1", "c1", "recommend_item", "app", 0.0, {"item_views": 3.0}, 10.0, 20.0, "treatment")
    >>> expose(p, e); expose(p, e); len(p.exposures)
    1
    """
    entries = _open(profile)
    if any(s.decision_id == e.decision_id for s in entries):
        return
    entry = OpenExposure(
        at=e.at,
        until=e.until,
        decision_id=e.decision_id,
        item=e.item,
        action_type=e.action_type,
        channel=e.channel,
        offer=e.offer,
        group=e.group,
        x=dict(e.x),
        decided=e.decided,
        decided_channel=e.decided_channel,
    )
    _keep(profile, sorted([*entries, entry], key=lambda s: (s.at, s.decision_id))[-max_pending:])


def mark_answered(profile: Profile, decision_id: str) -> bool:
    """Note that the message of ``decision_id`` was opened or clicked (its outcome will say so).

    >>> p = Profile("u:1")
    >>> expose(p, Exposure("d1", "c1", "recommend_item", "app", 0.0, {}, 10.0, 20.0, "treatment"))
    >>> mark_answered(p, "d1"), mark_answered(p, "d2"), on_time(p, 21.0)[0].x["answered"]
    (True, False, 1.0)
    """
    entries = _open(profile)
    for n, s in enumerate(entries):
        if s.decision_id == decision_id:
            entries[n] = s._replace(answered=1)
            _keep(profile, entries)
            return True
    return False


def _outcome(s: OpenExposure, y: bool) -> UpliftSample:
    x: dict[str, float | str] = {**s.x, "action": s.action_type, "channel": s.channel, "offer": s.offer}
    if s.group == "treatment":  # whether the message was read: the answer-rate label
        x["answered"] = float(s.answered)
    segment = s.x.get("segment", -1.0)
    return UpliftSample(
        x=x,
        y=y,
        decision_id=s.decision_id,
        group=s.group,  # one of the four, as Exposure promises
        at=s.at,
        decided=s.decided,
        decided_channel=s.decided_channel,
        segment=int(segment) if segment >= 0 else None,
    )


def on_purchase(profile: Profile, item: str | None, ts: float) -> list[UpliftSample]:
    """Outcomes a purchase of ``item`` at ``ts`` converts: every open exposure of the item.

    >>> p = Profile("u:1")
    >>> expose(p, Exposure("d1", "c1", "none", "", 0.0, {}, 10.0, 20.0, "control"))
    >>> expose(p, Exposure("d2", "c1", "recommend_item", "app", 0.0, {}, 12.0, 22.0, "treatment"))
    >>> expose(p, Exposure("d3", "c1", "recommend_item", "app", 0.0, {}, 16.0, 26.0, "treatment"))
    >>> on_purchase(p, "c2", 15.0), [(o.decision_id, o.y) for o in on_purchase(p, "c1", 15.0)]
    ([], [('d1', True), ('d2', True)])
    >>> [s.decision_id for s in _open(p)]  # d3's message is sent after the purchase: still open
    ['d3']
    """
    if item is None:
        return []
    entries = _open(profile)
    open_ = [s for s in entries if s.item == item and s.at < ts <= s.until]
    if not open_:
        return []
    converted = {s.decision_id for s in open_}
    _keep(profile, [s for s in entries if s.decision_id not in converted])
    return [_outcome(s, True) for s in open_]


def learnable(outcome: UpliftSample) -> bool:
    """Whether the uplift model learns from ``outcome`` (see the module docstring)."""
    return outcome.group != "none"


def on_time(profile: Profile, now: float) -> list[UpliftSample]:
    """Outcomes whose window ended before event time ``now`` without a conversion.

    >>> p = Profile("u:1")
    >>> expose(p, Exposure("d1", "c1", "none", "", 0.0, {}, 10.0, 20.0, "control"))
    >>> on_time(p, 20.0), [o.y for o in on_time(p, 20.5)]
    ([], [False])
    """
    entries = _open(profile)
    done = [s for s in entries if s.until < now]
    if not done:
        return []
    _keep(profile, [s for s in entries if s.until >= now])
    return [_outcome(s, False) for s in done]


def next_time(profile: Profile) -> float | None:
    """When the next window ends (a due time: a silent user's outcome must not wait for them)."""
    return min((s.until for s in _open(profile)), default=None)
