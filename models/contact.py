"""Contact policy: caps, cooldowns, quiet hours, suppression of ignored users, and a kill switch.

Promises
--------
* :func:`blocked` names every rule that forbids sending one action type on one channel at one
  send time (an empty tuple: allowed). The rules, with :class:`ContactRules`' defaults:

  - ``paused``: the kill switch is on (nothing is sent);
  - ``suppressed``: the user ignored ``max_ignored`` messages in a row and is left alone for
    ``suppression_s``;
  - ``cooldown``: the same action type was sent less than its cooldown before (either side of
    the send time, since sends can be scheduled ahead);
  - ``cap_day`` / ``cap_week``: ``max_per_day`` / ``max_per_week`` sends on all channels;
  - ``channel_cap_day`` / ``channel_cap_week``: the same per channel.

  Caps hold over *every* window of a day (a week) of event time, not calendar days: a send at
  ``s`` is allowed only if fewer than the cap were sent within a day (a week) either side of
  ``s``, so no window of that length, wherever it starts, ever holds more than the cap.
* :func:`send_time` moves a send out of the quiet hours, in the user's local time (their
  timezone, else ``default_timezone``): a decision at 23:10 with quiet hours 21:00-08:00 is sent
  at 08:00 the next local morning. Quiet hours are checked on the send time, not the decision.
* The state is a value (:class:`ContactState`): :meth:`ContactState.sent` records a send,
  :meth:`ContactState.answered` records an open or a click (the user is not ignoring us; the
  count of ignored messages goes back to zero), :meth:`ContactState.settle` turns sends whose
  expiry passed unanswered into ignored ones (and suppresses the user at ``max_ignored``).
  Sends older than the longest window or cooldown are forgotten, so the state stays small.
  :meth:`ContactState.cancel` withdraws the sends scheduled on a channel at or after a consent
  revocation (the worker publishes ``action_cancelled`` for each).

Clock: event time throughout (decision time, send time, feedback time); local time only for the
quiet hours.

Examples
--------
>>> rules = ContactRules(max_per_day=1, quiet_start_hour=22, quiet_end_hour=8)
>>> state = ContactState().sent("recommend_item", "app", at=0.0, action_id="a1", expires_at=3600.0)
>>> blocked(rules, state, "winback_offer", "sms", at=3600.0)
('cap_day',)
>>> blocked(rules, state, "winback_offer", "sms", at=86_400.0)
()
>>> send_time(rules, 23 * 3600.0, "UTC") / 3600  # 23:00 UTC -> 08:00 the next morning
32.0
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from schemas.vocabulary import DAY, WEEK

OPEN, ANSWER, IGNORED, SHADOW = range(4)
"""Waiting for an answer; opened or clicked; expired unanswered (counted once); a shadow send (a
control-group decision: never sent, so never answered, ignored or withdrawn, but counted by the
caps and cooldowns so that control users are decided for exactly like treated ones)."""


class Send(NamedTuple):
    """One send in the contact log. Stored as the list of its fields in this order (the profile's
    ``contact``), so the stored form is unchanged from the positional entries it replaced."""

    at: float
    """Its send time."""
    channel: str
    action_type: str
    action_id: str
    expires_at: float
    state: int
    """``OPEN``, ``ANSWER``, ``IGNORED`` or ``SHADOW``."""


@dataclass(frozen=True, slots=True)
class ContactRules:
    """How often, when and how long after being ignored a user may be contacted."""

    max_per_day: int = 2
    max_per_week: int = 5
    channel_max_per_day: int = 1
    channel_max_per_week: int = 3
    cooldown_s: Mapping[str, float] = field(default_factory=dict)
    """Per action type; types not listed use ``default_cooldown_s``."""
    default_cooldown_s: float = DAY
    quiet_start_hour: int = 21
    """Local hour at which the quiet hours begin (equal to the end: no quiet hours)."""
    quiet_end_hour: int = 8
    default_timezone: str = "Asia/Shanghai"
    """For users whose events never named a timezone."""
    max_ignored: int = 3
    """Messages in a row that expire unanswered (no open, no click) before the user is suppressed."""
    suppression_s: float = 30 * DAY
    paused: bool = False
    """The kill switch: when on, nothing is sent."""

    late_s: float = 2 * DAY
    """How far behind a user's newest decision a late event may still decide (the backfill age
    plus the lateness behind the watermark): sends are remembered this much longer than the
    longest rule, so that such a decision still counts them."""

    def cooldown(self, action_type: str) -> float:
        return self.cooldown_s.get(action_type, self.default_cooldown_s)

    @property
    def memory_s(self) -> float:
        """How long a send matters to any rule, as seen from the newest decision."""
        return max(WEEK, self.default_cooldown_s, *self.cooldown_s.values()) + self.late_s


@dataclass(frozen=True, slots=True)
class ContactState:
    """What was sent to one user and how they reacted (event time)."""

    log: tuple[Send, ...] = ()
    """Sends, oldest first."""
    ignored: int = 0
    """Messages in a row that expired unanswered."""
    suppressed_until: float | None = None

    @classmethod
    def from_profile(cls, log: list[list[Any]], ignored: int, suppressed_until: float | None) -> ContactState:
        return cls(tuple(Send(*s) for s in log), ignored, suppressed_until)

    def to_profile(self) -> tuple[list[list[Any]], int, float | None]:
        return [list(s) for s in self.log], self.ignored, self.suppressed_until

    def sent(
        self,
        action_type: str,
        channel: str,
        *,
        at: float,
        action_id: str,
        expires_at: float,
        shadow: bool = False,
    ) -> ContactState:
        """Record a send at ``at`` (its send time); a ``shadow`` one for a control-group decision."""
        entry = Send(at, channel, action_type, action_id, expires_at, SHADOW if shadow else OPEN)
        return replace(self, log=tuple(sorted((*self.log, entry), key=lambda s: (s.at, s.action_id))))

    def answered(self, action_id: str) -> ContactState:
        """The user opened or clicked ``action_id``: it is not ignored, nor are they."""
        log = tuple(
            s._replace(state=ANSWER) if s.action_id == action_id and s.state != SHADOW else s
            for s in self.log
        )
        if log == self.log:
            return self
        return replace(self, log=log, ignored=0, suppressed_until=None)

    def settle(self, now: float, rules: ContactRules) -> ContactState:
        """Count the sends that expired unanswered by ``now`` as ignored, suppress the user at
        ``max_ignored`` in a row, and forget sends no rule needs any more."""
        ignored, until, log = self.ignored, self.suppressed_until, []
        for s in self.log:
            if s.state == OPEN and s.expires_at <= now:
                ignored += 1
                if ignored >= rules.max_ignored:
                    until, ignored = max(until or 0.0, s.expires_at + rules.suppression_s), 0
                s = s._replace(state=IGNORED)  # counted once
            if s.at > now - rules.memory_s:
                log.append(s)
        if until is not None and until <= now:
            until = None
        new = ContactState(tuple(log), ignored, until)
        return self if new == self else new

    def cancel_all(self, since: float) -> tuple[Send, ...]:
        """The sends on every channel at or after ``since`` (an erase: none may go out)."""
        return tuple(s for s in self.log if s.at >= since and s.state != SHADOW)

    def cancel(self, channel: str, since: float) -> tuple[ContactState, tuple[Send, ...]]:
        """Withdraw the sends on ``channel`` at or after ``since`` (consent revoked then: those
        messages must not go out); the new state and the withdrawn sends."""
        gone = tuple(s for s in self.log if s.channel == channel and s.at >= since)
        if not gone:
            return self, ()
        return replace(self, log=tuple(s for s in self.log if s not in gone)), tuple(
            s for s in gone if s.state != SHADOW
        )

    def last_sent(self, action_type: str) -> float | None:
        return max((s.at for s in self.log if s.action_type == action_type), default=None)


def blocked(
    rules: ContactRules, state: ContactState, action_type: str, channel: str, *, at: float
) -> tuple[str, ...]:
    """The contact rules that forbid sending ``action_type`` on ``channel`` at send time ``at``."""
    out = []
    if rules.paused:
        out.append("paused")
    if state.suppressed_until is not None and at < state.suppressed_until:
        out.append("suppressed")
    cooldown = rules.cooldown(action_type)
    if any(s.action_type == action_type and abs(s.at - at) < cooldown for s in state.log):
        out.append("cooldown")
    for name, window, cap, same_channel in (
        ("cap_day", DAY, rules.max_per_day, False),
        ("cap_week", WEEK, rules.max_per_week, False),
        ("channel_cap_day", DAY, rules.channel_max_per_day, True),
        ("channel_cap_week", WEEK, rules.channel_max_per_week, True),
    ):
        near = sum(
            1 for s in state.log if abs(s.at - at) < window and (not same_channel or s.channel == channel)
        )
        if near >= cap:
            out.append(name)
    return tuple(out)


@functools.lru_cache(maxsize=512)
def zone(name: str | None, default: str) -> ZoneInfo:
    """The IANA zone ``name``, else ``default`` (an unknown name falls back too)."""
    try:
        return ZoneInfo(name or default)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(default)


def in_quiet_hours(rules: ContactRules, at: float, timezone: str | None) -> bool:
    """Whether ``at`` falls inside the quiet hours in the user's local time."""
    if rules.quiet_start_hour == rules.quiet_end_hour:
        return False
    return quiet_hour(rules, datetime.fromtimestamp(at, zone(timezone, rules.default_timezone)).hour)


def quiet_hour(rules: ContactRules, hour: int) -> bool:
    """Whether the local ``hour`` of day is a quiet one."""
    start, end = rules.quiet_start_hour, rules.quiet_end_hour
    if start == end:
        return False
    return start <= hour < end if start < end else hour >= start or hour < end


def send_time(rules: ContactRules, at: float, timezone: str | None) -> float:
    """The earliest time at or after ``at`` outside the quiet hours (user's local time)."""
    if not in_quiet_hours(rules, at, timezone):
        return at
    local = datetime.fromtimestamp(at, zone(timezone, rules.default_timezone))
    end = local.replace(hour=rules.quiet_end_hour, minute=0, second=0, microsecond=0)
    if end <= local:
        end += timedelta(days=1)
    return end.timestamp()
