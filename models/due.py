"""A due-time index: "wake this member at event time T", fired as a partition's watermark passes T.

Faust timers run on wall time; this index runs on **event time**. It is stored in any
``MutableMapping[str, list[str]]`` (a Faust table in the worker, a dict in tests and the offline
evaluator), in buckets of ``bucket_s`` seconds keyed ``"<partition>:<bucket>"``, so that one
partition's entries live in that partition's changelog and recover with it.

Entries are hints: the owner of a member keeps the authoritative due time (for a user, the
profile's ``due_at``) and ignores a wake-up that no longer matches, so rescheduling never has to
find and delete an old entry.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass


def bucket_of(ts: float, bucket_s: float) -> int:
    return int(ts // bucket_s)


@dataclass(slots=True)
class DueIndex:
    """Due entries of one partition.

    Examples
    --------
    >>> store: dict[str, list[str]] = {}
    >>> idx = DueIndex(store, partition=0, bucket_s=60)
    >>> idx.schedule("u:1", 130.0); idx.schedule("u:2", 500.0)
    >>> idx.pop_due(watermark=200.0, next_bucket=0)
    (['u:1'], 3)
    >>> idx.pop_due(watermark=600.0, next_bucket=3)
    (['u:2'], 10)
    """

    store: MutableMapping[str, list[str]]
    partition: int
    bucket_s: float = 3600.0

    def bucket(self, ts: float) -> int:
        return bucket_of(ts, self.bucket_s)

    def _key(self, bucket: int) -> str:
        return f"{self.partition}:{bucket}"

    def schedule(self, member: str, at: float) -> None:
        """Wake ``member`` once the watermark passes ``at``.

        ``at`` must lie after the partition's current watermark (a time already past belongs to
        the caller to act on now): a bucket behind the fired ones is never fired.
        """
        key = self._key(bucket_of(at, self.bucket_s))
        members = self.store.get(key) or []
        if member not in members:
            self.store[key] = [*members, member]

    def unschedule(self, member: str, at: float) -> None:
        """Forget ``member``'s entry for ``at`` (nothing if there is none)."""
        key = self._key(bucket_of(at, self.bucket_s))
        members = self.store.get(key)
        if members and member in members:
            rest = [m for m in members if m != member]
            if rest:
                self.store[key] = rest
            else:
                del self.store[key]

    def pop_due(self, watermark: float, next_bucket: int | None) -> tuple[list[str], int]:
        """Members of every complete bucket up to ``watermark``, and the next bucket to fire.

        A bucket fires once the watermark has passed its end, so every entry in it is due.
        ``next_bucket`` is ``None`` on a partition's first call: nothing can be due before the
        first watermark, since entries are only scheduled after events.
        """
        upto = bucket_of(watermark, self.bucket_s)  # buckets < upto are complete
        start = upto if next_bucket is None else next_bucket
        due: list[str] = []
        for bucket in range(start, upto):
            key = self._key(bucket)
            members = self.store.get(key)
            if members is not None:
                due.extend(members)
                del self.store[key]
        return due, max(start, upto)
