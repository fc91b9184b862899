"""Mean and spread of every ``nba evaluate`` figure over several simulated worlds (seeds).

Quality bars are reported this way (mean and spread over at least five seeds):

    .venv/bin/python -m bench.eval_seeds --seeds 1 2 3 4 5 --users 20000 --days 90

Writes bench/results/eval_seeds.json and prints a table.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path
from typing import Any

import orjson

from app.rules import setup
from app.settings import Settings
from lab.evaluate import evaluate
from lab.sim.output import write_jsonl
from lab.sim.world import World, WorldConfig

ROOT = Path(__file__).resolve().parents[1]


def run(seeds: list[int], users: int, days: int) -> dict[str, Any]:
    reports = []
    with tempfile.TemporaryDirectory(prefix="nba-seeds-") as tmp:
        for seed in seeds:
            path = Path(tmp) / f"world-{seed}.jsonl"
            write_jsonl(World(WorldConfig(days=days, users=users, seed=seed)), path)
            reports.append(evaluate(path, setup(Settings())))
            path.unlink()
    return summarize(seeds, users, days, reports)


def summarize(seeds: list[int], users: int, days: int, reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, spread and range of every numeric figure; the reports themselves under ``reports``."""
    summary: dict[str, Any] = {"seeds": seeds, "users": users, "days": days, "reports": reports}
    for key, value in reports[0].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [float(r[key]) for r in reports if r.get(key) is not None]
            summary[key] = {
                "mean": round(statistics.fmean(values), 4),
                "stdev": round(statistics.stdev(values), 4) if len(values) > 1 else 0.0,
                "min": round(min(values), 4),
                "max": round(max(values), 4),
            }
    return summary


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5])
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--out", type=Path, default=ROOT / "bench/results/eval_seeds.json")
    args = ap.parse_args()
    result = run(args.seeds, args.users, args.days)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    for key, value in result.items():
        if isinstance(value, dict) and "mean" in value:
            spread = f"± {value['stdev']:<10} [{value['min']}, {value['max']}]"
            print(f"{key:34s} mean {value['mean']:>12} {spread}")
