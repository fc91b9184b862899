"""What the decisions did: measured uplift and off-policy estimates from the decision log (``nba report``).

Inputs are the decision log (``marketing.decisions``, ``decision.v1`` records) and the decision
outcomes the workers sent to the learner (``uplift`` samples on ``nba.training``: each names its
``decision_id``, its group and whether the item was bought within the attribution window). Both
can be read from the topics or from JSONL files.

* **Uplift** per action, channel and segment: treated against control conversion with a 95%
  interval (:class:`models.uplift_report.UpliftTally`).
* **Off-policy estimates** (:mod:`models.offpolicy`) of other policies from the learned policy's
  own decisions (control and holdout decisions are left out: their action was withheld by
  design, not picked with the logged probability): the logged policy itself, its greedy part
  (no exploration), nothing at all, the foundation rule (the catalog's viewed-item action on the
  most engaged allowed channel) and each action alone. The reward is a conversion; the reward
  model is the policy's own prediction at the decision (``p_convert`` of each candidate).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from models.offpolicy import Logged, dr, ips, logged
from models.uplift_report import UpliftTally
from schemas.action_catalog import ActionCatalog
from schemas.decisions import DecisionRecord
from schemas.training import UpliftSample

Target = Callable[[Logged], int | None]


def offpolicy_log(
    decisions: Iterable[DecisionRecord], outcomes: dict[str, bool]
) -> list[tuple[Logged, DecisionRecord]]:
    """The logged decisions the policy made itself, with a known outcome, as an evaluation log."""
    out = []
    for record in decisions:
        if record.outcome not in ("sent", "no_action") or record.decision_id not in outcomes:
            continue
        allowed = [c for c in record.candidates if not c.removed_by]
        if not allowed or any(c.p_convert is None or c.uplift is None for c in allowed):
            continue  # decided by the foundation rule, or nothing could be sent
        chosen = next(
            (i for i, c in enumerate(allowed) if (c.action, c.channel) == (record.action, record.channel)),
            None,
        )
        scored = [(c.score, float(c.uplift or 0.0), float(c.p_convert or 0.0)) for c in allowed]
        chosen = chosen if record.outcome == "sent" else None
        out.append((logged(chosen, record.propensity, float(outcomes[record.decision_id]), scored), record))
    return out


def targets(catalog: ActionCatalog) -> dict[str, Callable[[DecisionRecord], int | None]]:
    """Deterministic policies to evaluate, each as a choice among a record's allowed candidates."""
    viewed = {a.name for a in catalog.actions if a.item == "viewed"}

    def allowed(r: DecisionRecord) -> list[Any]:
        return [c for c in r.candidates if not c.removed_by]

    def greedy(r: DecisionRecord) -> int | None:
        a = allowed(r)
        return max(range(len(a)), key=lambda i: a[i].score)

    def rule(r: DecisionRecord) -> int | None:
        return next((i for i, c in enumerate(allowed(r)) if c.action in viewed), None)

    def only(name: str) -> Callable[[DecisionRecord], int | None]:
        return lambda r: next((i for i, c in enumerate(allowed(r)) if c.action == name), None)

    out: dict[str, Callable[[DecisionRecord], int | None]] = {
        "greedy": greedy,
        "rule": rule,
        "nothing": lambda r: None,
    }
    out |= {f"only {a.name}": only(a.name) for a in catalog.actions}
    return out


def offpolicy(
    decisions: Iterable[DecisionRecord], outcomes: dict[str, bool], catalog: ActionCatalog
) -> dict[str, Any]:
    """Mean conversion per decision of each target policy: IPS and DR, each (mean, low, high)."""
    log = offpolicy_log(decisions, outcomes)
    if not log:
        return {"decisions": 0}
    report: dict[str, Any] = {
        "decisions": len(log),
        "logged": round(sum(d.reward for d, _ in log) / len(log), 4),
        "explored": sum(1 for _, r in log if r.explored),
    }
    for name, pick in targets(catalog).items():
        choice = {id(d): pick(r) for d, r in log}
        entries = [d for d, _ in log]
        report[name] = {
            "ips": ips(entries, lambda d, c=choice: c[id(d)]),  # type: ignore[misc]
            "dr": dr(entries, lambda d, c=choice: c[id(d)]),  # type: ignore[misc]
        }
    return report


def build(
    decisions: list[DecisionRecord], outcomes: list[UpliftSample], catalog: ActionCatalog
) -> dict[str, Any]:
    """The report's figures: decisions by outcome, uplift rows, off-policy estimates."""
    tally = UpliftTally()
    for outcome in outcomes:
        tally.add(outcome)
    by_id = {o.decision_id: o.y for o in outcomes}
    return {
        "decisions": dict(Counter(r.outcome for r in decisions)),
        "policies": dict(Counter(r.policy.rsplit("-", 1)[0] for r in decisions)),
        "outcomes": len(outcomes),
        "uplift": tally.rows(),
        "offpolicy": offpolicy(decisions, by_id, catalog),
    }


def render_html(report: dict[str, Any]) -> str:
    """A self-contained HTML page: tables and inline SVG bars with their 95% intervals."""
    parts = [
        "<!doctype html><meta charset=utf-8><title>nba report</title>",
        "<style>body{font-family:sans-serif;max-width:60em}td,th{padding:2px 8px;text-align:right}"
        "td:first-child,th:first-child{text-align:left}</style>",
        "<h1>Next-best-action report</h1>",
        f"<p>Decisions by outcome: {html.escape(str(report['decisions']))}; outcomes known: "
        f"{report['outcomes']}.</p>",
    ]
    for dimension in ("action", "channel", "segment"):
        rows = [r for r in report["uplift"] if r["dimension"] == dimension]
        if not rows:
            continue
        parts.append(f"<h2>Uplift by {dimension}: treated minus control conversion</h2>")
        parts.append(_uplift_svg(rows))
        parts.append(
            "<table><tr><th>"
            + "</th><th>".join((dimension, "treated", "rate", "control", "rate", "uplift", "95% interval"))
            + "</th></tr>"
        )
        for r in rows:
            cells = (
                r["value"],
                r["treated"],
                _pct(r["treated_rate"]),
                r["control"],
                _pct(r["control_rate"]),
                _pct(r["uplift"]),
                "—" if r["ci95"] is None else f"{_pct(r['ci95'][0])} to {_pct(r['ci95'][1])}",
            )
            parts.append("<tr><td>" + "</td><td>".join(html.escape(str(c)) for c in cells) + "</td></tr>")
        parts.append("</table>")
    ope = report["offpolicy"]
    parts.append("<h2>Off-policy estimates (conversion per decision)</h2>")
    if not ope.get("decisions"):
        parts.append("<p>No decisions of the learned policy with a known outcome.</p>")
    else:
        parts.append(
            f"<p>{ope['decisions']} decisions of the learned policy ({ope['explored']} explored); "
            f"their mean conversion: {_pct(ope['logged'])}.</p><table><tr><th>policy</th><th>IPS</th>"
            "<th>DR</th><th>DR 95% interval</th></tr>"
        )
        for name, est in ope.items():
            if isinstance(est, dict):
                low, high = est["dr"][1], est["dr"][2]
                parts.append(
                    f"<tr><td>{html.escape(name)}</td><td>{_pct(est['ips'][0])}</td><td>{_pct(est['dr'][0])}</td>"
                    f"<td>{_pct(low)} to {_pct(high)}</td></tr>"
                )
        parts.append("</table>")
    return "".join(parts)


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f}%"


def _uplift_svg(rows: list[dict[str, Any]], width: int = 640, bar: int = 22) -> str:
    """Horizontal bars of the uplift, with the 95% interval as a whisker; zero is marked."""
    shown = [r for r in rows if r["uplift"] is not None]
    if not shown:
        return "<p>No value has both treated and control decisions yet.</p>"
    low = min(0.0, *(float(r["ci95"][0]) for r in shown))
    high = max(0.0, *(float(r["ci95"][1]) for r in shown))
    span, left, plot = (high - low) or 1.0, 170, width - 190

    def x(v: float) -> float:
        return left + plot * (v - low) / span

    height = bar * len(shown) + 30
    out = [f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg">']
    out.append(f'<line x1="{x(0):.1f}" y1="0" x2="{x(0):.1f}" y2="{height - 20}" stroke="#999"/>')
    for i, r in enumerate(shown):
        y = 5 + i * bar
        a, b = sorted((x(0), x(r["uplift"])))
        out.append(f'<text x="0" y="{y + 14}">{html.escape(str(r["value"]))[:24]}</text>')
        out.append(f'<rect x="{a:.1f}" y="{y + 3}" width="{b - a:.1f}" height="{bar - 8}" fill="#1f77b4"/>')
        lo, hi = x(r["ci95"][0]), x(r["ci95"][1])
        out.append(f'<line x1="{lo:.1f}" y1="{y + 8}" x2="{hi:.1f}" y2="{y + 8}" stroke="#d62728"/>')
    out.append(f'<text x="{left}" y="{height - 5}">{_pct(low)}</text>')
    out.append(f'<text x="{width - 60}" y="{height - 5}">{_pct(high)}</text></svg>')
    return "".join(out)
