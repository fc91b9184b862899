"""The worker's state as the engine sees it: :class:`TableStore` (the engine's
:class:`models.engine.UserStore` over the Faust tables, a cache of live profiles, and the Redis
mirror) and :func:`engine` (the engine with the rules and model snapshots in force now); plus
what a rebalance does to them (:func:`forget_clocks`, :func:`resync_mirror`). No rule lives here.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from agents.runtime import Runtime
from models.churn import ChurnModel, ValueModel
from models.clock import PartitionClock
from models.engine import Engine, EngineConfig
from models.profile import Profile
from models.recommend import Recommender
from models.segmentation import Segmenter
from models.uplift import UpliftModel
from models.user_step import Scorers


class TableStore:
    """The engine's :class:`models.engine.UserStore` over the worker's Faust tables.

    Profiles are decoded once and kept in an LRU cache of live objects: the ``ingest`` and
    ``users`` agents interleave at every ``await``, and both must change the same object, never
    two copies of it. ``put_profile`` writes the table (and with it the changelog), the cache and
    the Redis mirror at once, so the table never lags the object another agent may read while
    this one waits on a send.
    """

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def _cache(self, profile: Profile) -> Profile:
        cache = self.rt.profile_cache
        cache[profile.canonical] = profile
        cache.move_to_end(profile.canonical)
        if len(cache) > self.rt.profile_cache_size:
            cache.popitem(last=False)
        return profile

    def profile(self, canonical: str) -> Profile | None:
        cached: Profile | None = self.rt.profile_cache.get(canonical)
        if cached is not None:
            self.rt.profile_cache.move_to_end(canonical)
            return cached
        raw = self.rt.profiles.get(canonical)
        return self._cache(Profile.loads(raw)) if raw is not None else None

    def put_profile(self, profile: Profile) -> None:
        self.rt.profiles[profile.canonical] = profile.dumps()
        self._cache(profile)
        self.rt.mirror.put(profile.canonical, profile)

    def delete_profile(self, canonical: str) -> None:
        self.rt.profile_cache.pop(canonical, None)
        if canonical in self.rt.profiles:
            del self.rt.profiles[canonical]  # a tombstone on the changelog
        self.rt.mirror.delete(canonical)

    def link(self, anonymous_id: str) -> str | None:
        raw = self.rt.identity.get(anonymous_id)
        return raw.decode() if raw else None

    def put_link(self, anonymous_id: str, user_id: str) -> None:
        self.rt.identity[anonymous_id] = user_id.encode()

    def delete_link(self, anonymous_id: str) -> None:
        if anonymous_id in self.rt.identity:
            del self.rt.identity[anonymous_id]

    def clock(self, partition: int) -> PartitionClock:
        clock = self.rt.clocks.get(partition)
        if clock is None:
            raw = self.rt.clocks_table.get(str(partition))
            clock = PartitionClock.from_dict(raw) if raw else PartitionClock()
            self.rt.clocks[partition] = clock
        return clock

    def put_clock(self, partition: int, clock: PartitionClock) -> None:
        self.rt.clocks[partition] = clock
        self.rt.clocks_table[str(partition)] = clock.to_dict()

    def due_entries(self) -> MutableMapping[str, list[str]]:
        return self.rt.due

    def is_erased(self, key: str) -> bool:
        return key in self.rt.erased

    def put_erased(self, key: str, at: float) -> None:
        self.rt.erased[key] = repr(at).encode()


def scorers(rt: Runtime) -> Scorers:
    """The latest snapshots of the shared models."""
    m = rt.models
    seg, churn, value, rec = m.get("segmentation"), m.get("churn"), m.get("value"), m.get("similarity")
    return Scorers(
        segmenter=seg if isinstance(seg, Segmenter) else None,
        churn=churn if isinstance(churn, ChurnModel) else None,
        value=value if isinstance(value, ValueModel) else None,
        recommender=rec.attach(rt.catalog) if isinstance(rec, Recommender) else None,
        uplift=uplift if isinstance(uplift := m.get("uplift"), UpliftModel) else None,
    )


def engine(rt: Runtime) -> Engine:
    """The engine with the rules, catalog and model snapshots in force now."""
    cfg = EngineConfig(
        step=rt.step,
        lateness_s=rt.time.lateness_s,
        due_bucket_s=rt.time.due_bucket_s,
        erase_salt=rt.erase_salt,
        publish=not rt.no_send,
        watermark_support=rt.time.watermark_support,
        max_future_skew_s=rt.time.max_future_skew_s,
    )
    return Engine(cfg, rt.catalog, scorers(rt))


def forget_clocks(rt: Runtime) -> None:
    """Drop in-memory clocks and cached profiles (after a rebalance they reload from the tables)."""
    rt.clocks.clear()
    rt.profile_cache.clear()


async def resync_mirror(rt: Runtime) -> int:
    """Re-mirror every profile this worker owns (after table recovery: Redis may be stale)."""
    count = 0
    for key, raw in list(rt.profiles.items()):
        if raw is None:
            continue
        rt.mirror.put(key, Profile.loads(raw))
        count += 1
    return count
