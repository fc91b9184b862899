"""The profile as a feature vector: what the segmentation (and later the churn and value) models
read, and what their explanations are written in.

Promises
--------
* :func:`profile_features` is a pure function of the profile and an event time ``now``; every
  value is finite, and the keys are always exactly :data:`FEATURES` (missing data is 0).
* Counts enter as ``log1p``; shares and rates are in [0, 1]; hours enter as a point on the
  circle (``hour_sin``, ``hour_cos``) so 23:00 and 01:00 are close.
* :data:`LABELS` gives each feature the words a marketer reads in segment descriptions.

Clock: event time (``now``, seconds); recency is ``now - last_seen``.
"""

from __future__ import annotations

import math
import operator

from models import decay
from models.profile import Profile
from schemas.vocabulary import CHANNELS, DAY

"""Channels with their own share feature (others count only in the totals)."""

FEATURES: tuple[str, ...] = (
    "recency_days",
    "events_7d",
    "events_30d",
    "active_days",
    "completion",
    "share_rate",
    "purchase_rate",
    "spend",
    "premium_view_rate",
    "hour_sin",
    "hour_cos",
    *(f"ch_{c}" for c in CHANNELS),
)

LABELS: dict[str, tuple[str, str]] = {
    "recency_days": ("recently active", "long inactive"),
    "events_7d": ("very active this week", "quiet this week"),
    "events_30d": ("very active this month", "quiet this month"),
    "active_days": ("many active days", "few active days"),
    "completion": ("finishes what they start", "rarely finishes content"),
    "share_rate": ("shares often", "rarely shares"),
    "purchase_rate": ("buys often", "rarely buys"),
    "spend": ("high spend", "low spend"),
    "premium_view_rate": ("browses premium items", "browses cheap items"),
    "hour_sin": ("active in the morning", "active in the evening"),
    "hour_cos": ("active around midnight", "active around midday"),
    **{f"ch_{c}": (f"prefers {c}", f"seldom on {c}") for c in CHANNELS},
}
"""feature -> (words when high, words when low). ``recency_days`` high means long ago, so its
"high" words are listed second: see :func:`describe_direction`."""


_SIN = tuple(math.sin(2 * math.pi * h / 24) for h in range(24))
_COS = tuple(math.cos(2 * math.pi * h / 24) for h in range(24))


def describe_direction(feature: str, high: bool) -> str:
    """Readable words for ``feature`` being high (``True``) or low.

    >>> describe_direction("spend", True), describe_direction("recency_days", True)
    ('high spend', 'long inactive')
    """
    up, down = LABELS[feature]
    if feature == "recency_days":
        up, down = down, up
    return up if high else down


def profile_features(profile: Profile, now: float) -> dict[str, float]:
    """The feature vector of ``profile`` at event time ``now``.

    Examples
    --------
    >>> p = Profile("u:1", last_seen=0.0, events=2, by_channel={"app": 2}, days=[0])
    >>> f = profile_features(p, 86_400.0)
    >>> f["recency_days"], f["ch_app"], len(f) == len(FEATURES)
    (1.0, 1.0, True)
    """
    events = profile.events
    last = profile.last_seen if profile.last_seen is not None else now
    all_counts = profile.decayed.get("all")
    hours = profile.hours
    total_h = sum(hours)
    if total_h:
        s = sum(map(operator.mul, hours, _SIN)) / total_h
        c = sum(map(operator.mul, hours, _COS)) / total_h
    else:
        s = c = 0.0
    viewed = sum(profile.price_viewed.values())
    premium = profile.price_viewed.get("high", 0) + profile.price_viewed.get("premium", 0)
    x = {
        "recency_days": max(0.0, now - last) / DAY,
        "events_7d": math.log1p(decay.value_at(all_counts, now, 1)) if all_counts else 0.0,
        "events_30d": math.log1p(decay.value_at(all_counts, now, 2)) if all_counts else 0.0,
        "active_days": math.log1p(len(profile.days)),
        "completion": profile.progress_sum / profile.progress_views if profile.progress_views else 0.0,
        "share_rate": profile.by_type.get("share", 0) / events if events else 0.0,
        "purchase_rate": profile.purchases / events if events else 0.0,
        "spend": math.log1p(max(0.0, profile.spend)),
        "premium_view_rate": premium / viewed if viewed else 0.0,
        "hour_sin": s,
        "hour_cos": c,
    }
    for ch in CHANNELS:
        x[f"ch_{ch}"] = profile.by_channel.get(ch, 0) / events if events else 0.0
    return x
