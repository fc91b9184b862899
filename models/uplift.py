"""Conversion with and without an action, learned online from outcomes: the policy's uplift model.

Promises
--------
* :func:`decision_features` describes a decision point by value (user, item, stage, segment), so
  an outcome can be learned days after its decision from what was known at the decision.
* :class:`UpliftModel` estimates P(convert | no action) and P(convert | action, channel) as
  hierarchical Beta-Bernoulli rates, each level shrunk towards its parent:

  - without an action: item stratum (how often the user viewed the item: 0, 1, 2, 3 or more,
    and whether last in the past day) [-> + segment];
  - with one: action type and item stratum (whose prior is the baseline plus ``prior_uplift``)
    [-> + segment]; times the channel's factor.

  A channel's factor is learned from every action sent on it: its conversions over the
  conversions the channel-free rates expected of those sends (shrunk towards 1 by
  ``channel_prior`` expected conversions). So an action's uplift is learned per action from its
  own outcomes, a channel's effect from all sends, and a segment's where it has data; a level
  with few outcomes leans on its parent. The baseline is learned from untreated outcomes only (control and
  holdout users): they are few and rarely convert, which is why the model is a few pooled
  rates rather than a regression over many features (a River logistic regression over the
  features did not converge on a few dozen baseline conversions in the simulator).
* :meth:`UpliftModel.uplift` is P(convert | x, action, channel) - P(convert | x, no action).
* It follows River's classifier API (``learn_one(x, y)``, ``predict_proba_one(x)``), is
  deterministic (it draws nothing at random) and pickles.
"""

from __future__ import annotations

import math
from typing import Any

from river import base

from models.profile import Profile
from schemas.vocabulary import DAY

STAGES = ("acquisition", "activation", "retention", "expansion", "loyalty", "at_risk", "dormant")
NONE = "none"
"""The ``action`` of an outcome without treatment."""


def price_sensitivity(profile: Profile) -> float:
    """Share of the user's item views on free or low-priced items (0..1; 0.5 if unknown).

    >>> price_sensitivity(Profile("u:1", price_viewed={"free": 3, "mid": 1}))
    0.75
    """
    seen = sum(profile.price_viewed.values())
    if not seen:
        return 0.5
    return (profile.price_viewed.get("free", 0) + profile.price_viewed.get("low", 0)) / seen


def last_purchase(profile: Profile) -> float | None:
    """Event time of the user's newest purchase (``None`` if they never bought)."""
    counter = profile.decayed.get("t:purchase")
    return counter[0] if counter and profile.purchases else None


def decision_features(profile: Profile, now: float, item: str, price: float) -> dict[str, float]:
    """What the uplift model knows of a decision point at event time ``now`` about ``item``.

    >>> x = decision_features(Profile("u:1", events=3, item_views={"c1": [2, 0.0]}), 0.0, "c1", 49.0)
    >>> x["item_views"], x["stage=acquisition"], round(x["log_price"], 3)
    (2.0, 1.0, 3.912)
    """
    views = profile.item_views.get(item)
    last_buy = last_purchase(profile)
    x = {
        "log_events": math.log1p(profile.events),
        "log_purchases": math.log1p(profile.purchases),
        "log_spend": math.log1p(profile.spend),
        "item_views": float(views[0]) if views else 0.0,
        "item_seen_days": (now - views[1]) / DAY if views else 30.0,
        "log_price": math.log1p(price),
        "sensitivity": price_sensitivity(profile),
        "churn_risk": profile.churn_risk if profile.churn_risk is not None else 0.5,
        "days_since_purchase": min((now - last_buy) / DAY, 90.0) if last_buy is not None else 90.0,
    }
    x[f"stage={profile.stage}"] = 1.0
    x["segment"] = float(profile.segment) if profile.segment is not None else -1.0
    return x


class UpliftModel(base.Classifier):
    """Conversion probability of a decision point with or without an action (see module docstring).

    ``x`` is :func:`decision_features` (``item_views`` and ``segment`` are used) plus ``action``
    (an action type, or ``"none"``) and ``channel``.

    Parameters
    ----------
    prior_uplift
        Uplift of an action type before any of its outcomes.
    prior_weight
        Outcomes that weigh as much as a level's parent (its prior).
    base_rate
        Conversion rate without an action, before any outcome.
    channel_prior
        Expected conversions that weigh as much as a channel factor of 1.
    answer_base
        Share of messages opened or clicked, before any outcome says otherwise.
    answer_weight
        Messages that weigh as much as the level above in :meth:`answer_rate`.
    segments
        Also learn a level per segment under each action and under the baseline. Off by default:
        with a 5-10% control group the per-segment baselines rest on a handful of conversions,
        and in the simulator their noise sent the policy to "nothing" on whole segments (0.77
        and 0.88 of the oracle on two seeds with them, 0.87 and 0.87 without).

    Examples
    --------
    >>> import random
    >>> rng, model = random.Random(0), UpliftModel(prior_weight=10)
    >>> for _ in range(8000):
    ...     treated, viewed = rng.random() < 0.5, rng.random() < 0.5
    ...     action = "recommend_item" if treated else "none"
    ...     x = {"item_views": 3.0 * viewed, "action": action, "channel": "app"}
    ...     p = 0.02 + 0.20 * viewed + (0.10 if treated else 0.0)
    ...     model.learn_one(x, rng.random() < p)
    >>> [abs(model.uplift({"item_views": v}, "recommend_item", "app") - 0.10) < 0.03 for v in (0.0, 3.0)]
    [True, True]
    >>> round(model.uplift({"item_views": 0.0}, "winback_offer", "sms"), 2)  # no outcomes: the prior
    0.01
    """

    def __init__(
        self,
        prior_uplift: float = 0.01,
        prior_weight: float = 30.0,
        base_rate: float = 0.03,
        channel_prior: float = 5.0,
        answer_base: float = 0.25,
        answer_weight: float = 20.0,
        segments: bool = False,
    ) -> None:
        self.segments = segments
        self.answer_base = answer_base
        self.answer_weight = answer_weight
        self.prior_uplift = prior_uplift
        self.prior_weight = prior_weight
        self.base_rate = base_rate
        self.channel_prior = channel_prior
        self.counts: dict[tuple[str, ...], list[int]] = {}
        """level key -> [conversions, outcomes]."""
        self.channels: dict[str, list[float]] = {}
        """channel -> [conversions, conversions expected without the channel factor]."""
        self.answers: dict[tuple[str, ...], list[int]] = {}
        """(channel,) and (channel, segment) -> [messages answered, messages sent]."""
        self.n_learned = 0

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A snapshot written before the answer rates existed restores without any (additive)."""
        self.__dict__.update({"answer_base": 0.25, "answer_weight": 20.0, "answers": {}, **state})

    @property
    def _multiclass(self) -> bool:
        return False

    def _keys(self, x: dict[str, Any]) -> list[tuple[str, ...]]:
        """The levels ``x`` belongs to, most general first."""
        views = min(int(x.get("item_views", 0.0)), 3)
        recent = views and float(x.get("item_seen_days", 30.0)) < 1.0
        stratum = f"views={views}" + ("/today" if recent else "")
        segment = x.get("segment")
        seg = str(int(segment)) if isinstance(segment, int | float) and segment >= 0 else "?"
        action = str(x.get("action", NONE))
        return [(action, stratum)] if not self.segments else [(action, stratum), (action, stratum, seg)]

    def learn_one(self, x: dict[str, Any], y: bool) -> None:  # type: ignore[override]
        """Learn one outcome; a sent one's ``x`` may also say whether the message was ``answered``
        (opened or clicked): a label for :meth:`answer_rate`, never a feature of conversion."""
        if x.get("action", NONE) != NONE:
            channel = self.channels.setdefault(str(x.get("channel", "")), [0.0, 0.0])
            channel[0] += float(bool(y))
            channel[1] += self._treated_rate(x)
            if "answered" in x:
                for key in self._answer_keys(str(x.get("channel", "")), x.get("segment")):
                    counts = self.answers.setdefault(key, [0, 0])
                    counts[0] += int(bool(x["answered"]))
                    counts[1] += 1
        for key in self._keys(x):
            counts = self.counts.setdefault(key, [0, 0])
            counts[0] += int(bool(y))
            counts[1] += 1
        self.n_learned += 1

    def _rate(self, keys: list[tuple[str, ...]], prior: float) -> float:
        p = prior
        for key in keys:
            converted, n = self.counts.get(key, (0, 0))
            p = (converted + self.prior_weight * p) / (n + self.prior_weight)
        return p

    def _treated_rate(self, x: dict[str, Any]) -> float:
        """P(convert | x, action) before the channel factor."""
        baseline = self._rate(self._keys({**x, "action": NONE})[:1], self.base_rate)
        return self._rate(self._keys(x), baseline + self.prior_uplift)

    @staticmethod
    def _answer_keys(channel: str, segment: Any) -> list[tuple[str, ...]]:
        seg = str(int(segment)) if isinstance(segment, int | float) and segment >= 0 else None
        return [(channel,)] if seg is None else [(channel,), (channel, seg)]

    def answer_rate(self, channel: str, segment: Any = None) -> float:
        """Share of messages on ``channel`` that are answered: all users', or ``segment``'s
        (shrunk towards all users')."""
        return self._answer(self._answer_keys(channel, segment))

    def _answer(self, keys: list[tuple[str, ...]]) -> float:
        p = self.answer_base
        for key in keys:
            answered, n = self.answers.get(key, (0, 0))
            p = (answered + self.answer_weight * p) / (n + self.answer_weight)
        return p

    def channel_factor(self, channel: str) -> float:
        """How much more sends on ``channel`` convert than the channel-free rates expect."""
        converted, expected = self.channels.get(channel, (0.0, 0.0))
        return (converted + self.channel_prior) / (expected + self.channel_prior)

    def predict_proba_one(self, x: dict[str, Any]) -> dict[bool, float]:  # type: ignore[override]
        if x.get("action", NONE) == NONE:
            p = self._rate(self._keys(x), self.base_rate)
        else:
            p = min(1.0, self._treated_rate(x) * self.channel_factor(str(x.get("channel", ""))))
        return {False: 1.0 - p, True: p}

    def uplift(self, x: dict[str, Any], action: str, channel: str) -> float:
        """P(convert | x, ``action`` on ``channel``) - P(convert | x, nothing)."""
        return self.p_convert(x, action, channel) - self.p_convert(x, NONE, "")

    def uplift_sd(self, x: dict[str, Any], action: str, channel: str) -> tuple[float, float]:
        """:meth:`uplift` and its standard deviation (Beta posteriors of the two rates at their
        most specific levels: outcomes seen plus the prior's weight), each rate computed once."""
        p1, p0 = self.p_convert(x, action, channel), self.p_convert(x, NONE, "")
        n1 = self.counts.get(self._keys({**x, "action": action})[-1], (0, 0))[1] + self.prior_weight
        n0 = self.counts.get(self._keys({**x, "action": NONE})[-1], (0, 0))[1] + self.prior_weight
        return p1 - p0, math.sqrt(p1 * (1 - p1) / n1 + p0 * (1 - p0) / n0)

    def p_convert(self, x: dict[str, Any], action: str, channel: str) -> float:
        """P(convert | x, action) (``action`` ``"none"``: without one)."""
        return self.predict_proba_one({**x, "action": action, "channel": channel})[True]

    def explain(self, action: str, x: dict[str, Any]) -> str:
        """How many outcomes the estimate of ``action`` rests on, in words."""
        sent = self.counts.get(self._keys({**x, "action": action})[0], (0, 0))[1]
        base = self.counts.get(self._keys({**x, "action": NONE})[0], (0, 0))[1]
        return f"estimate from {sent} past sends of it and {base} control outcomes, for items viewed as often"
