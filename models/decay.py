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

DAY = 86_400.0
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
