"""The one vocabulary every package shares: the channels and the time units (seconds).

Event types, lifecycle stages and DLQ reasons are defined with their schemas
(:mod:`schemas.events`, :mod:`schemas.lifecycle`, :mod:`schemas.dlq`); everything else imports
these names rather than spelling them again.

>>> DAY / HOUR, WEEK / DAY, CHANNELS[0]
(24.0, 7.0, 'app')
"""

from __future__ import annotations

from typing import Literal

Channel = Literal["app", "web", "wechat", "weibo", "douyin", "zhihu", "email", "sms"]
CHANNELS: tuple[Channel, ...] = ("app", "web", "wechat", "weibo", "douyin", "zhihu", "email", "sms")
"""Every channel the platform reaches users through (the ingress default, the catalog's allowed
channels, the features' one-hot order)."""

MINUTE = 60.0
HOUR = 3600.0
DAY = 86_400.0
WEEK = 7 * DAY
