"""Measured uplift per action, channel and segment: treated against control conversion.

:class:`UpliftTally` counts decision outcomes (:mod:`models.attribution`) by what was decided and
by group. The treated side is the decisions sent; the control side is the decisions made for
control-group and holdout users, which were logged and never sent. Both are random by hash, so
their difference estimates the uplift of the decisions the policy makes. Each row has a 95%
interval (normal approximation of the difference of two proportions).

Examples
--------
>>> from schemas.training import UpliftSample
>>> t = UpliftTally()
>>> for i in range(400):
...     changed = t.add(UpliftSample(x={}, y=i % 2 == 1 and i % 10 < 5, decision_id=f"d{i}", at=0.0,
...                     group="treatment" if i % 2 else "control", decided="recommend_item",
...                     decided_channel="app", segment=1))
>>> row = t.rows()[0]
>>> row["dimension"], row["value"], row["treated"], row["control"], row["uplift"]
('action', 'recommend_item', 200, 200, 0.4)
"""

from __future__ import annotations

import math
from typing import Any

from schemas.training import UpliftSample

DIMENSIONS = ("action", "channel", "segment")
Z95 = 1.96


def difference(ct: int, nt: int, cc: int, nc: int) -> tuple[float, float, float]:
    """Treated minus control conversion (``ct`` of ``nt`` against ``cc`` of ``nc``) with its 95%
    interval, normal approximation: (difference, low, high). An empty side counts as a rate of 0.

    >>> [round(v, 3) for v in difference(30, 100, 10, 100)]
    [0.2, 0.093, 0.307]
    """
    pt, pc = ct / max(nt, 1), cc / max(nc, 1)
    half = Z95 * math.sqrt(pt * (1 - pt) / max(nt, 1) + pc * (1 - pc) / max(nc, 1))
    return pt - pc, pt - pc - half, pt - pc + half


class UpliftTally:
    """Conversions and decisions per (dimension, value, side)."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, str], list[int]] = {}
        """(dimension, value, ``treated`` or ``control``) -> [conversions, decisions]."""

    def add(self, outcome: UpliftSample) -> tuple[tuple[str, str], ...]:
        """Count one outcome; the (dimension, value) rows it changed (none for outcomes of decisions
        where the policy chose nothing: they are skipped)."""
        if outcome.group == "none":
            return ()
        side = "treated" if outcome.group == "treatment" else "control"
        segment = outcome.segment
        values = (
            ("action", outcome.decided),
            ("channel", outcome.decided_channel),
            ("segment", "unknown" if segment is None else str(segment)),
        )
        for dimension, value in values:
            counts = self.counts.setdefault((dimension, value, side), [0, 0])
            counts[0] += int(outcome.y)
            counts[1] += 1
        return values

    def rows(self, only: tuple[tuple[str, str], ...] | None = None) -> list[dict[str, Any]]:
        """Per (dimension, value) (all, or ``only`` these): decisions and conversion of each side,
        the uplift and its 95% interval (``None`` while a side has no decisions)."""
        keys = sorted(
            set(only) if only is not None else {(d, v) for d, v, _ in self.counts},
            key=lambda k: (DIMENSIONS.index(k[0]), k[1]),
        )
        out = []
        for dimension, value in keys:
            ct, nt = self.counts.get((dimension, value, "treated"), (0, 0))
            cc, nc = self.counts.get((dimension, value, "control"), (0, 0))
            row: dict[str, Any] = {
                "dimension": dimension,
                "value": value,
                "treated": nt,
                "control": nc,
                "treated_rate": round(ct / nt, 4) if nt else None,
                "control_rate": round(cc / nc, 4) if nc else None,
                "uplift": None,
                "ci95": None,
            }
            if nt and nc:
                uplift, lo, hi = difference(ct, nt, cc, nc)
                row["uplift"] = round(uplift, 4)
                row["ci95"] = [round(lo, 4), round(hi, 4)]
            out.append(row)
        return out
