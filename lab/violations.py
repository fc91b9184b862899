"""An independent contact-policy checker: replays sent actions against the consent, erase and
feedback logs and counts every violation.

It shares no code with the policy (:mod:`models.contact`, :mod:`models.decision`): it reads what
went out on ``marketing.actions`` and what the users said on ``users.consent``, ``users.erase``
and ``marketing.feedback``, and recomputes each rule from those logs alone.

An action counts as sent at its ``send_at`` (else ``created_at``); an ``action_cancelled`` event
withdraws its ``action_id``. Rules (the :class:`models.contact.ContactRules` meanings, times in seconds):

* ``consent``: the newest consent change for (user, channel) at or before the send time revoked
  it (a feedback ``unsubscribed`` is a revocation at its time; at equal times a revocation wins;
  a channel with no change at all is allowed, as in the worker);
* ``erased``: the user was erased at or before the send time;
* ``quiet_hours``: the send time falls in the quiet hours in the user's local time: the timezone
  of the event that triggered the send (``trigger_event_id`` in ``event_timezones``: where the
  user was when it was decided, which matters for a shared device), else the user's, else the
  rules' default;
* ``cap_day`` / ``cap_week`` / ``channel_cap_day`` / ``channel_cap_week``: some window of 24 hours
  (7 days), starting at a send, holds more sends than the cap (counted once per window);
* ``cooldown``: two sends of the same action type closer than its cooldown.

Clock: event time (the logs' own timestamps).
"""

from __future__ import annotations

import bisect
import itertools
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from models.contact import ContactRules
from schemas.vocabulary import DAY


def _ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def check(
    actions: Iterable[Mapping[str, Any]],
    *,
    consent: Iterable[Mapping[str, Any]] = (),
    erase: Iterable[Mapping[str, Any]] = (),
    feedback: Iterable[Mapping[str, Any]] = (),
    timezones: Mapping[str, str] | None = None,
    event_timezones: Mapping[str, str] | None = None,
    rules: ContactRules | None = None,
) -> Counter[str]:
    """Violations by rule (an empty counter: none). Inputs are the topics' JSON values."""
    rules = rules or ContactRules()
    timezones = timezones or {}
    event_timezones = event_timezones or {}
    cancelled = {a["action_id"] for a in actions if a.get("event") == "action_cancelled"}
    sent: dict[str, list[tuple[float, str, str]]] = defaultdict(list)  # user -> (at, channel, type)
    zones: dict[tuple[str, float], list[str]] = defaultdict(list)  # (user, at) -> trigger timezones
    for a in actions:
        if a.get("event", "action") == "action" and a["action_id"] not in cancelled:
            at = _ts(a.get("send_at") or a["created_at"])
            sent[a["user_id"]].append((at, a["channel"], a["action_type"]))
            trigger_zone = event_timezones.get(a.get("trigger_event_id") or "")
            zones[(a["user_id"], at)].append(
                trigger_zone or timezones.get(a["user_id"]) or rules.default_timezone
            )
    changes: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)  # (at, 0 revoked | 1 granted)
    for c in consent:
        changes[(c["user_id"], c["channel"])].append((_ts(c["at"]), int(bool(c["granted"]))))
    for f in feedback:
        if f["kind"] == "unsubscribed":
            changes[(f["user_id"], f["channel"])].append((_ts(f["at"]), 0))
    for timeline in changes.values():
        timeline.sort()
    erased = {e["user_id"]: _ts(e["at"]) for e in erase}
    out: Counter[str] = Counter()
    for user, sends in sent.items():
        sends.sort()
        for at, channel, _ in sends:
            local = ZoneInfo(zones[(user, at)].pop())
            if _revoked(changes.get((user, channel), []), at):
                out["consent"] += 1
            if user in erased and at >= erased[user]:
                out["erased"] += 1
            hour = datetime.fromtimestamp(at, local).hour
            start, end = rules.quiet_start_hour, rules.quiet_end_hour
            if start != end and (start <= hour < end if start < end else hour >= start or hour < end):
                out["quiet_hours"] += 1
        _caps(sends, rules, out)
    return out


def _revoked(timeline: list[tuple[float, int]], at: float) -> bool:
    """Whether the newest change at or before ``at`` revoked (a revocation wins a tie; no change
    at all: allowed, as consent is revoked explicitly)."""
    j = bisect.bisect_right(timeline, (at, 1)) - 1
    if j < 0:
        return False
    newest = timeline[j][0]
    return timeline[bisect.bisect_left(timeline, (newest, 0))][1] == 0


def _caps(sends: list[tuple[float, str, str]], rules: ContactRules, out: Counter[str]) -> None:
    for name, window, cap, per_channel in (
        ("cap_day", DAY, rules.max_per_day, False),
        ("cap_week", 7 * DAY, rules.max_per_week, False),
        ("channel_cap_day", DAY, rules.channel_max_per_day, True),
        ("channel_cap_week", 7 * DAY, rules.channel_max_per_week, True),
    ):
        groups: dict[str, list[float]] = defaultdict(list)
        for at, channel, _ in sends:
            groups[channel if per_channel else ""].append(at)
        for times in groups.values():
            for k, start in enumerate(times):
                if bisect.bisect_left(times, start + window) - k > cap:
                    out[name] += 1
    by_type: dict[str, list[float]] = defaultdict(list)
    for at, _, kind in sends:
        by_type[kind].append(at)
    for kind, times in by_type.items():
        cooldown = rules.cooldown_s.get(kind, rules.default_cooldown_s)
        out["cooldown"] += sum(1 for a, b in itertools.pairwise(times) if b - a < cooldown)
