"""Where and when to reach one user: their answer rate per channel, and their best hour to send.

Promises
--------
* :func:`note_sent` and :func:`note_answered` keep, in the profile, each channel's messages sent
  and answered (opened or clicked, once per message) and the local hours of the answers.
* :func:`channel_factor` is how much more than an average user this user answers on a channel:
  their answer rate there, a Beta posterior whose prior is their segment's rate (itself shrunk
  towards all users' rate by :meth:`models.uplift.UpliftModel.answer_rate`), over all users'
  rate. Without messages to the user it is their segment's factor; with neither, 1. The policy
  multiplies an action's uplift on that channel by it: a message that is not read does not
  convert.
* :func:`best_send_time` picks when to send: at once (after quiet hours) if the user is about as
  active then as at their best hour, else the start of the half hour, within ``max_delay_hours``
  and outside quiet hours, where they are most active. Activity at an hour counts the user's
  events within two hours of it (weights 1, 2, 3, 2, 1), and each answered message as
  ``answer_weight`` events. Users with fewer than ``min_events`` events are sent at once.

Pure: time is the caller's event time; nothing is drawn at random. Clock: event time.
"""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo

from models.contact import ContactRules, in_quiet_hours, quiet_hour, send_time, zone
from models.profile import Profile, local_hour
from schemas.action_catalog import ChannelLearning, Timing
from schemas.vocabulary import DAY, HOUR


def note_sent(profile: Profile, channel: str) -> None:
    """Count a message sent to the user on ``channel``.

    >>> p = Profile("u:1"); note_sent(p, "sms"); p.responses
    {'sms': [1, 0]}
    """
    profile.responses.setdefault(channel, [0, 0])[0] += 1


def note_answered(profile: Profile, channel: str, at: float) -> None:
    """Count an answer (the first open or click of a message) on ``channel`` at event time ``at``.

    >>> p = Profile("u:1", timezone="Asia/Shanghai"); note_answered(p, "sms", 12 * 3600.0)
    >>> p.responses, p.answer_hours.index(1)
    ({'sms': [0, 1]}, 20)
    """
    profile.responses.setdefault(channel, [0, 0])[1] += 1
    profile.answer_hours[local_hour(at, profile.timezone)] += 1


def channel_factor(
    profile: Profile, channel: str, segment_rate: float, overall_rate: float, cfg: ChannelLearning
) -> float:
    """The user's answer rate on ``channel`` (posterior, prior ``segment_rate``) over ``overall_rate``.

    >>> cfg = ChannelLearning(prior_weight=10)
    >>> p = Profile("u:1", responses={"sms": [10, 8]})
    >>> round(channel_factor(p, "sms", 0.2, 0.25, cfg), 2), round(channel_factor(p, "app", 0.2, 0.25, cfg), 2)
    (2.0, 0.8)
    """
    if not cfg.enabled or overall_rate <= 0:
        return 1.0
    sent, answered = profile.responses.get(channel, (0, 0))
    posterior = (answered + cfg.prior_weight * segment_rate) / (sent + cfg.prior_weight)
    return posterior / overall_rate


def activity(profile: Profile, cfg: Timing) -> list[float]:
    """The user's activity per local hour of day (events and weighted answers, smoothed).

    >>> act = activity(Profile("u:1", hours=[1] + [0] * 23, answer_hours=[0] * 23 + [1]), Timing())
    >>> act[:3], act[21:]  # an event at 00:00, an answer (three events) at 23:00
    ([9.0, 5.0, 1.0], [3.0, 7.0, 11.0])
    """
    w = cfg.answer_weight
    r = [e + w * a for e, a in zip(profile.hours, profile.answer_hours, strict=True)]
    r = r[-2:] + r + r[:2]  # wrapped around midnight: r[h + 2] is hour h
    return [r[h] + 2 * r[h + 1] + 3 * r[h + 2] + 2 * r[h + 3] + r[h + 4] for h in range(24)]


def best_send_time(profile: Profile, now: float, rules: ContactRules, cfg: Timing) -> tuple[float, bool]:
    """When to send to the user at event time ``now``, and whether that was moved to their best hour.

    >>> rules, cfg = ContactRules(quiet_start_hour=23, quiet_end_hour=7), Timing()
    >>> p = Profile("u:1", timezone="UTC", hours=[0] * 18 + [30] + [0] * 5)  # active at 18:00-19:00
    >>> at, moved = best_send_time(p, 9 * 3600.0, rules, cfg)  # 09:00 UTC
    >>> at / 3600, moved
    (18.5, True)
    >>> best_send_time(p, 18 * 3600.0 + 60, rules, cfg)  # already in the active hour: at once
    (64860.0, False)
    """
    if not cfg.enabled or sum(profile.hours) < cfg.min_events:
        return send_time(rules, now, profile.timezone), False
    act = activity(profile, cfg)
    (at, hour), *later = slots_with_hours(now, rules, profile.timezone, cfg.max_delay_hours)
    here = act[hour]
    best_at, best = at, here
    for t, h in later:
        if act[h] > best:
            best_at, best = t, act[h]
    if here >= cfg.tolerance * best:
        return at, False
    return best_at, True


def send_slots(now: float, rules: ContactRules, timezone: str | None, max_delay_hours: float) -> list[float]:
    """When a message decided at ``now`` may go out: at once (after quiet hours), then each half
    past the hour in the user's local time within ``max_delay_hours`` and outside quiet hours.

    >>> rules = ContactRules(quiet_start_hour=23, quiet_end_hour=7)
    >>> [t / 3600 for t in send_slots(22 * 3600.0, rules, "UTC", 10)]
    [22.0, 22.5, 31.5]
    """
    return [t for t, _ in slots_with_hours(now, rules, timezone, max_delay_hours)]


def slots_with_hours(
    now: float, rules: ContactRules, timezone: str | None, max_delay_hours: float
) -> list[tuple[float, int]]:
    """:func:`send_slots`, each with its local hour of day as :attr:`Profile.hours` counts it.

    While neither the user's zone nor the quiet hours' zone changes its clock between ``now`` and
    the last slot, local times are the UTC time plus a fixed offset, and the slots are computed
    with arithmetic (no zone has two clock changes within two days, and ``max_delay_hours`` is
    at most 48); across a clock change, from the zone, slot by slot
    (:func:`slots_by_zone`, the same answer, about ten times slower).

    >>> rules = ContactRules(quiet_start_hour=23, quiet_end_hour=7)  # 22:00 UTC is 06:00 in Shanghai
    >>> [(t / 3600, h) for t, h in slots_with_hours(22 * 3600.0, rules, "Asia/Shanghai", 3)]
    [(23.0, 7), (23.5, 7), (24.5, 8)]
    """
    end = now + max_delay_hours * HOUR
    local_zone, quiet_zone = zone(timezone, "UTC"), zone(timezone, rules.default_timezone)
    off = _fixed_offset(local_zone, now, end)
    quiet_off = off if quiet_zone is local_zone else _fixed_offset(quiet_zone, now, end)
    if off is None or quiet_off is None:
        return slots_by_zone(now, rules, timezone, max_delay_hours)
    first = send_time(rules, now, timezone)
    slots = [(first, local_hour(first, timezone))]
    local = now + off
    t = local - local % HOUR + HOUR / 2
    if t <= local:
        t += HOUR
    t -= off
    while t <= end:
        if not quiet_hour(rules, int((t + quiet_off) % DAY // HOUR)):
            slots.append((t, int((t + off) % DAY // HOUR)))
        t += HOUR
    return slots


def slots_by_zone(
    now: float, rules: ContactRules, timezone: str | None, max_delay_hours: float
) -> list[tuple[float, int]]:
    """:func:`slots_with_hours` converting every slot to local time with the zone (any clock changes)."""
    first = send_time(rules, now, timezone)
    slots = [(first, local_hour(first, timezone))]
    local = datetime.fromtimestamp(now, zone(timezone, "UTC"))
    slot = local.replace(minute=30, second=0, microsecond=0)
    if slot <= local:
        slot += timedelta(hours=1)
    t = slot.timestamp()
    while t <= now + max_delay_hours * HOUR:
        if not in_quiet_hours(rules, t, timezone):
            slots.append((t, local_hour(t, timezone)))
        t += HOUR
    return slots


def _fixed_offset(tz: tzinfo, start: float, end: float) -> float | None:
    """The zone's UTC offset in seconds if it is the same at ``start`` and ``end``, else ``None``."""
    a = datetime.fromtimestamp(start, tz).utcoffset()
    b = datetime.fromtimestamp(end, tz).utcoffset()
    return a.total_seconds() if a is not None and a == b else None
