"""A simulated ratings log shaped like public ones: ``ratings-v1``.

Clock: **event time**, epoch seconds from ``RatingsWorldConfig.start``. A seed determines the
whole log. It writes the columns of the README's ratings mapping, ``user,item,rating,ts``, so
``nba evaluate`` reads it exactly as it reads a real ratings log (a rating of 4 or more is a
purchase, any other rating a view).

The simulated platform world (:mod:`lab.sim.world`, ``world-v1``) is smooth: users come back
every day or two and browse a few items. Public ratings logs are not, and this world copies
the shape that ``bench/README.md`` cites and measures:

* **size and span**: by default 943 users, 1,682 items and 100,000 ratings over 212 days, each
  user rating at least 20 items (the published size of the MovieLens 100K log);
* **bursts and silences**: a user joins at a uniform time over the span and rates in sessions:
  a first, largest session at sign-up, then sessions separated by heavy-tailed gaps (most within
  a day or two, some weeks or months), each a burst of ratings seconds to a minute apart;
* **long tails**: items are drawn with Zipf weights over their popularity rank (exponent
  ``zipf``), so a few items get hundreds of ratings and most get a handful; the number of
  ratings per user is heavy-tailed too (lognormal above the minimum);
* **taste and locality**: items belong to one to three of ``genres`` genres; a user's taste is a
  sparse mix over genres; within a session the user browses one genre at a time, staying in it
  with probability ``stay`` (a list of titles in a genre is what a rating page shows), so the
  items rated together are similar; the rating is the item's quality plus the user's taste for
  its genres plus noise, rounded to 1..5.

Nothing in it is tuned to a recommender's score: its parameters are the published shape above
(see ``bench/README.md`` for the figures and their sources, and what the defaults give).

    python -m lab.sim.ratings --seed 1 --out ratings.csv
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from schemas.vocabulary import DAY

RATINGS_WORLD_VERSION = "ratings-v1"


@dataclass(frozen=True, slots=True)
class RatingsWorldConfig:
    """The shape of the log (defaults: the published size of MovieLens 100K, see the module)."""

    users: int = 943
    items: int = 1682
    ratings: int = 100_000
    min_per_user: int = 20
    span_days: float = 212.0
    start: float = 874_724_710.0
    """1997-09-20 (UTC), epoch seconds: a log from before the event contract's years, as real
    ones are (read it with ``time_offset_s: auto``)."""
    genres: int = 19
    zipf: float = 1.0
    """Exponent of the items' popularity over their rank."""
    per_user_sigma: float = 1.0
    """Spread (log scale) of the number of ratings per user above the minimum."""
    first_session_share: float = 0.5
    """Mean share of a user's ratings made in the first session."""
    session_mean: float = 12.0
    """Mean ratings per later session."""
    gap_days_median: float = 1.5
    gap_days_sigma: float = 2.0
    """Gaps between sessions: lognormal with this median (days) and spread (log scale)."""
    step_s_median: float = 20.0
    """Median seconds between two ratings of one session."""
    stay: float = 0.7
    taste_alpha: float = 0.3
    """Dirichlet concentration of a user's taste over genres (small: a few genres)."""


class Rating(NamedTuple):
    user: str
    item: str
    rating: int
    ts: int


def _dirichlet(rng: random.Random, n: int, alpha: float) -> list[float]:
    g = [rng.gammavariate(alpha, 1.0) for _ in range(n)]
    total = sum(g) or 1.0
    return [x / total for x in g]


def _per_user_counts(rng: random.Random, cfg: RatingsWorldConfig) -> list[int]:
    """Ratings per user: the minimum plus a lognormal share of the rest (summing to the total)."""
    raw = [rng.lognormvariate(0.0, cfg.per_user_sigma) for _ in range(cfg.users)]
    rest = max(0, cfg.ratings - cfg.users * cfg.min_per_user)
    total = sum(raw)
    counts = [cfg.min_per_user + int(rest * r / total) for r in raw]
    cap = cfg.items // 2
    counts = [min(c, cap) for c in counts]
    short = cfg.ratings - sum(counts)
    i = 0
    while short > 0 and i < 10 * cfg.users:  # rounding: hand the remainder out one by one
        u = i % cfg.users
        if counts[u] < cap:
            counts[u] += 1
            short -= 1
        i += 1
    return counts


def generate(cfg: RatingsWorldConfig | None = None, seed: int = 1) -> list[Rating]:
    """The whole log, in time order (ties by user and item).

    >>> log = generate(RatingsWorldConfig(users=30, items=200, ratings=1200), seed=3)
    >>> len(log), min(r.rating for r in log) >= 1, len({r.user for r in log})
    (1200, True, 30)
    >>> log == generate(RatingsWorldConfig(users=30, items=200, ratings=1200), seed=3)
    True
    """
    cfg = cfg or RatingsWorldConfig()
    rng = random.Random(f"{RATINGS_WORLD_VERSION}:{seed}")
    pop = [1.0 / (rank + 1) ** cfg.zipf for rank in range(cfg.items)]
    rng.shuffle(pop)  # popularity is not tied to the item id
    item_genres: list[tuple[int, ...]] = []
    for _ in range(cfg.items):
        n = 1 + (rng.random() < 0.45) + (rng.random() < 0.15)
        item_genres.append(tuple(rng.sample(range(cfg.genres), n)))
    quality = [rng.gauss(0.0, 0.6) for _ in range(cfg.items)]
    by_genre: list[list[int]] = [[] for _ in range(cfg.genres)]
    for i, gs in enumerate(item_genres):
        for g in gs:
            by_genre[g].append(i)
    genre_weights = [[pop[i] for i in members] for members in by_genre]
    span = cfg.span_days * DAY
    out: list[Rating] = []
    for u, n in enumerate(_per_user_counts(rng, cfg)):
        taste = _dirichlet(rng, cfg.genres, cfg.taste_alpha)
        joined = cfg.start + rng.random() * span * 0.9
        t = joined
        first = max(
            1,
            min(n, round(n * min(0.95, max(0.05, rng.betavariate(2.0, 2.0) * 2 * cfg.first_session_share)))),
        )
        sessions = [first]
        left = n - first
        while left > 0:
            size = min(left, 1 + int(rng.expovariate(1.0 / max(1.0, cfg.session_mean - 1))))
            sessions.append(size)
            left -= size
        seen: set[int] = set()
        for s, size in enumerate(sessions):
            if s:
                t += DAY * cfg.gap_days_median * math.exp(cfg.gap_days_sigma * rng.gauss(0.0, 1.0))
                if t > cfg.start + span:  # the log ends: the rest of the ratings come in a last burst
                    t = cfg.start + span - rng.random() * DAY
            genre = rng.choices(range(cfg.genres), taste)[0]
            for _ in range(size):
                if rng.random() > cfg.stay:
                    genre = rng.choices(range(cfg.genres), taste)[0]
                item = -1
                for _try in range(20):
                    pick = rng.choices(by_genre[genre], genre_weights[genre])[0] if by_genre[genre] else -1
                    if pick >= 0 and pick not in seen:
                        item = pick
                        break
                if item < 0:  # the genre is exhausted for this user: any unseen item by popularity
                    item = rng.choices(range(cfg.items), pop)[0]
                    while item in seen:
                        item = rng.randrange(cfg.items)
                seen.add(item)
                affinity = sum(taste[g] for g in item_genres[item]) * cfg.genres / 3.0
                score = 3.5 + quality[item] + 0.6 * math.tanh(affinity - 1.0) + rng.gauss(0.0, 1.0)
                out.append(Rating(f"u{u + 1}", f"i{item + 1}", min(5, max(1, round(score))), int(t)))
                t += cfg.step_s_median * math.exp(0.8 * rng.gauss(0.0, 1.0))
    out.sort(key=lambda r: (r.ts, r.user, r.item))
    return out


def write_csv(path: Path, log: Iterator[Rating] | list[Rating]) -> int:
    """Write ``user,item,rating,ts`` rows; returns how many."""
    n = 0
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(Rating._fields)
        for r in log:
            w.writerow(r)
            n += 1
    return n


def main(argv: list[str] | None = None) -> None:
    d = RatingsWorldConfig()
    p = argparse.ArgumentParser(description="Write a simulated ratings log (user,item,rating,ts).")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--users", type=int, default=d.users)
    p.add_argument("--items", type=int, default=d.items)
    p.add_argument("--ratings", type=int, default=d.ratings)
    a = p.parse_args(argv)
    cfg = RatingsWorldConfig(users=a.users, items=a.items, ratings=a.ratings)
    n = write_csv(a.out, generate(cfg, a.seed))
    print(f"{n} ratings -> {a.out} ({RATINGS_WORLD_VERSION}, seed {a.seed})")


if __name__ == "__main__":
    main()
