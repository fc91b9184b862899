"""Event-time rules that act on silent users, woken by the due-time index.

Foundation rule: a user with no event for ``dormant_after_s`` of event time becomes dormant;
any applied event makes them active again (see :func:`models.profile.apply_event`).
"""

from __future__ import annotations

from models.profile import Profile


def next_wake(profile: Profile, dormant_after_s: float) -> float | None:
    """Event time at which this user should be looked at again, or ``None``."""
    if profile.last_seen is None or profile.dormant:
        return None
    return profile.last_seen + dormant_after_s


def wake(profile: Profile, now: float, dormant_after_s: float) -> bool:
    """Apply the inactivity rules at event time ``now``; ``True`` if the profile changed.

    >>> p = Profile("u:1", last_seen=0.0)
    >>> wake(p, 10.0, dormant_after_s=100.0), wake(p, 100.0, dormant_after_s=100.0), p.dormant
    (False, True, True)
    """
    due = next_wake(profile, dormant_after_s)
    if due is None or now < due:
        return False
    profile.dormant = True
    profile.due_at = None
    return True
