"""The simulated ratings log (``ratings-v1``) has the shape it promises and reads through the
README's ratings mapping."""

from __future__ import annotations

import itertools
import statistics
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from lab.logs import Mapping, ReadStats, read_ordered
from lab.sim.ratings import RatingsWorldConfig, generate, write_csv
from schemas.vocabulary import DAY


@pytest.fixture(scope="module")
def log() -> list:
    return generate(RatingsWorldConfig(), seed=1)


def test_the_default_log_has_the_published_size(log) -> None:
    cfg = RatingsWorldConfig()
    per_user = Counter(r.user for r in log)
    assert len(log) == cfg.ratings and len(per_user) == cfg.users
    assert min(per_user.values()) >= cfg.min_per_user
    assert len({r.item for r in log}) > 0.95 * cfg.items
    assert (log[-1].ts - log[0].ts) <= cfg.span_days * DAY
    assert len({(r.user, r.item) for r in log}) == len(log)  # an item is rated once per user


def test_it_is_bursty_long_tailed_and_mostly_positive(log) -> None:
    times = defaultdict(list)
    for r in log:
        times[r.user].append(r.ts)
    gaps = sorted(b - a for ts in times.values() for a, b in itertools.pairwise(ts))
    assert statistics.median(gaps) < 60  # ratings come in bursts seconds apart
    assert sum(g > 7 * DAY for g in gaps) > 0.002 * len(gaps)  # and silences of weeks
    items = sorted(Counter(r.item for r in log).values(), reverse=True)
    assert items[0] > 10 * statistics.median(items)  # a long tail of items
    share = sum(r.rating >= 4 for r in log) / len(log)
    assert 0.45 < share < 0.65 and {r.rating for r in log} == {1, 2, 3, 4, 5}


def test_a_seed_fixes_the_log(log) -> None:
    small = RatingsWorldConfig(users=40, items=300, ratings=2000)
    assert generate(small, seed=2) == generate(small, seed=2) != generate(small, seed=3)


def test_it_reads_through_the_readme_s_ratings_mapping(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    write_csv(path, generate(RatingsWorldConfig(users=40, items=300, ratings=2000), seed=2))
    m = Mapping(
        user="user",
        item="item",
        time="ts",
        time_unit="s",
        default_type="view",
        value="rating",
        purchase_min_value=4,
        time_offset_s="auto",
    )
    stats = ReadStats()
    kinds = Counter(rec.value["type"] for rec in read_ordered(path, m, stats=stats))
    assert stats.rejected.total() == 0 and sum(kinds.values()) == 2000
    assert set(kinds) == {"view", "purchase"}
