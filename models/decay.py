"""Exponentially decayed counters in event time, exact whatever the order of the events.

A counter over events ``(ts_i, w_i)`` has, for a half-life ``h``, the value at time ``t``::

    v(t) = sum_i  w_i * 2 ** (-(t - ts_i) / h)        (for t >= every ts_i)

It is stored as ``[at, v_h1, v_h2, ...]``: the values at ``at``, the newest event time seen.
An event newer than ``at`` moves ``at`` forward (the values decay to it, then the weight is
added); an older one adds its weight already decayed to ``at``. Both are the same sum, so the
result does not depend on arrival order (up to floating-point rounding, ~1e-15 relative).

Promises
--------
* :func:`add` and :func:`combine` are order-independent: the stored values equal the batch sum
  above at ``t = max ts`` (see ``tests/unit/test_profile_features.py``).
* :func:`value_at` never extrapolates backwards: read before ``at``, it returns the values at
  ``at``.
"""

from __future__ import annotations

from collections.abc import Callable

from schemas.vocabulary import DAY

HALF_LIVES_S: tuple[float, ...] = (1 * DAY, 7 * DAY, 30 * DAY)
"""The half-lives of the profile's decayed counts: 1, 7 and 30 days of event time."""


def new(ts: float, weight: float, half_lives: tuple[float, ...] = HALF_LIVES_S) -> list[float]:
    """A counter holding one event.

    >>> new(0.0, 1.0, (DAY,))
    [0.0, 1.0]
    """
    return [ts, *(weight for _ in half_lives)]


def add(counter: list[float], ts: float, weight: float, half_lives: tuple[float, ...] = HALF_LIVES_S) -> None:
    """Add an event of ``weight`` at ``ts`` to ``counter`` in place.

    >>> c = new(DAY, 1.0, (DAY,)); add(c, 0.0, 1.0, (DAY,)); c
    [86400.0, 1.5]
    >>> d = new(0.0, 1.0, (DAY,)); add(d, DAY, 1.0, (DAY,)); d == c
    True
    """
    at = counter[0]
    if ts >= at:
        gap = ts - at
        for i, h in enumerate(half_lives, start=1):
            counter[i] = counter[i] * 2.0 ** (-gap / h) + weight
        counter[0] = ts
    else:
        gap = at - ts
        for i, h in enumerate(half_lives, start=1):
            counter[i] += weight * 2.0 ** (-gap / h)


def combine(a: list[float], b: list[float], half_lives: tuple[float, ...] = HALF_LIVES_S) -> list[float]:
    """The counter of the union of the events of ``a`` and ``b`` (a new list)."""
    at = max(a[0], b[0])
    out = [at]
    for i, h in enumerate(half_lives, start=1):
        out.append(a[i] * 2.0 ** (-(at - a[0]) / h) + b[i] * 2.0 ** (-(at - b[0]) / h))
    return out


def value_at(
    counter: list[float], t: float, index: int, half_lives: tuple[float, ...] = HALF_LIVES_S
) -> float:
    """The value for ``half_lives[index]`` at event time ``t``.

    >>> value_at(new(0.0, 4.0, (DAY,)), 2 * DAY, 0, (DAY,))
    1.0
    """
    gap = max(0.0, t - counter[0])
    return float(counter[index + 1] * 2.0 ** (-gap / half_lives[index]))


class Inflation:
    """Decay of a whole set of counters at once, for counters that are only read as ratios.

    Instead of decaying every counter as time passes, each new weight is multiplied by a growth
    factor ``2 ** ((ts - t0) / half_life)``: relative to each other, older weights then count
    for less exactly as with decay, and nothing is rewritten. When the factor passes ``limit``
    the owner divides its counters by it (``rescale``) and the factor starts again from 1.

    >>> inf, counters = Inflation(DAY), {"a": 0.0}
    >>> def rescale(by): counters.update((k, v / by) for k, v in counters.items())
    >>> counters["a"] += 1.0 * inf.grow(0.0, rescale)
    >>> round(inf.grow(DAY, rescale), 6), round(inf.at(2 * DAY), 6)
    (2.0, 4.0)
    """

    def __init__(self, half_life_s: float, limit: float = 1e12) -> None:
        self.half_life_s = half_life_s
        self.limit = limit
        self.t0: float | None = None
        self.base = 1.0

    def at(self, ts: float) -> float:
        """The factor at event time ``ts`` (1 before anything was added)."""
        if self.t0 is None:
            return 1.0
        return float(self.base * 2.0 ** ((ts - self.t0) / self.half_life_s))

    def grow(self, ts: float, rescale: Callable[[float], None]) -> float:
        """The factor to multiply a weight added at ``ts`` by (rescaling the counters first
        when it has grown past ``limit``)."""
        if self.t0 is None:
            self.t0 = ts
        factor = self.at(ts)
        if factor > self.limit:
            rescale(factor)
            self.t0, self.base, factor = ts, 1.0, 1.0
        return factor
