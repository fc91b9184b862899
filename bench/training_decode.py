"""What reading one ``nba.training`` sample costs: plain ``orjson.loads`` (untyped dicts, what the
learner read before the typed union) against the typed union of :mod:`schemas.training`
(pydantic), and msgspec when it is installed (it is not a dependency; ``pip install msgspec``
to include it). Prints µs per sample and the ratios, for a mix like the worker's stream.

    .venv/bin/python -m bench.training_decode
"""

from __future__ import annotations

import timeit
from collections.abc import Callable
from typing import Any, Literal

import orjson

from schemas.training import parse_sample

MIX: list[bytes] = [
    orjson.dumps(s)
    for s in (
        {"model": "segmentation", "x": {f"f{i}": float(i) for i in range(9)}, "at": 1.7e9},
        {"model": "segmentation", "x": {f"f{i}": float(i) for i in range(9)}, "at": 1.7e9},
        {
            "model": "similarity",
            "x": {
                "item": "c1",
                "kind": "view",
                "ts": 1.7e9,
                "progress": 0.5,
                "segment": 2,
                "channel": "app",
                "recent": [[f"c{i}", 1.0] for i in range(10)],
            },
            "at": 1.7e9,
        },
        {"model": "churn", "x": {f"f{i}": float(i) for i in range(12)}, "y": 1.0, "at": 1.7e9},
        {
            "model": "uplift",
            "x": {"item_views": 3.0, "action": "recommend_item", "channel": "app", "offer": 0.0},
            "y": False,
            "decision_id": "d1",
            "group": "treatment",
            "at": 1.7e9,
            "decided": "recommend_item",
            "decided_channel": "app",
            "segment": 1,
        },
    )
]


def _msgspec() -> Callable[[bytes], Any] | None:
    try:
        import msgspec
    except ImportError:
        return None

    class Base(msgspec.Struct, tag_field="model", forbid_unknown_fields=False):
        at: float

    class Seg(Base, tag="segmentation"):
        x: dict[str, float]

    class Churn(Base, tag="churn"):
        x: dict[str, float]
        y: float  # msgspec reads no 1.0 as a bool, even with strict=False

    class Value(Base, tag="value"):
        x: dict[str, float]
        y: float

    class Sim(Base, tag="similarity"):
        x: dict[str, Any]

    class Uplift(Base, tag="uplift"):
        x: dict[str, float | str]
        y: bool
        decision_id: str
        group: Literal["treatment", "control", "holdout", "none"]
        decided: str
        decided_channel: str
        segment: int | None = None

    decoder = msgspec.json.Decoder(Seg | Churn | Value | Sim | Uplift, strict=False)
    return decoder.decode


def main() -> None:
    n = 20_000
    ways: dict[str, Callable[[bytes], Any] | None] = {
        "orjson.loads (dicts)": orjson.loads,
        "pydantic union (schemas.training)": parse_sample,
        "msgspec union": _msgspec(),
    }
    base = None
    for name, fn in ways.items():
        if fn is None:
            print(f"{name:36s} not installed")
            continue
        best = min(timeit.repeat(lambda f=fn: [f(m) for m in MIX], number=n // len(MIX), repeat=5))
        us = best / n * 1e6
        base = base or us
        print(f"{name:36s} {us:6.2f} µs/sample  x{us / base:.2f}")


if __name__ == "__main__":
    main()
