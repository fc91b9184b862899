"""Rate-limited logs: an error storm (a broker down, a Redis outage) writes a few lines, not
a hundred thousand.

:class:`RateLimit` is a :class:`logging.Filter` on the root logger's handlers (``nba worker``
installs it): per logger, level and message template (the format string, not the formatted
text), at most ``burst`` records pass in each window of ``window_s`` seconds. When a window that
suppressed records ends, the next record that passes says how many were dropped. Counting is by
template, so ``"fetch failed for %s"`` is one source however many partitions it names.

:class:`Redact` is the other filter ``nba worker`` installs: at every level, an argument of a
log call that is raw bytes (a Kafka key or value as Faust and aiokafka log them at debug level:
user ids, whole payloads) is replaced by its size and a keyed hash (HMAC-SHA-256 under a key
drawn per process, so a hash correlates lines of one run and reveals nothing). The service's own
log lines carry no user ids.

Clock: wall time (monotonic), since a log storm is an operational event, not a stream one.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections.abc import Callable


class RateLimit(logging.Filter):
    """At most ``burst`` records per (logger, level, template) per ``window_s`` seconds.

    Examples
    --------
    >>> now = [0.0]
    >>> f = RateLimit(burst=2, window_s=10.0, clock=lambda: now[0])
    >>> def rec(): return logging.LogRecord("kafka", logging.ERROR, "", 0, "down: %s", ("x",), None)
    >>> [f.filter(rec()) for _ in range(5)]
    [True, True, False, False, False]
    >>> now[0] = 11.0
    >>> r = rec(); f.filter(r), r.getMessage()
    (True, 'down: x [3 similar lines suppressed in the last 10s]')
    """

    def __init__(
        self, burst: int = 5, window_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.burst = burst
        self.window_s = window_s
        self.clock = clock
        self._windows: dict[tuple[str, int, str], list[float | int]] = {}
        """key -> [window start, passed in this window, suppressed in this window]."""

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, record.levelno, str(record.msg))
        now = self.clock()
        w = self._windows.get(key)
        if w is None or now - w[0] >= self.window_s:
            suppressed = int(w[2]) if w is not None else 0
            self._windows[key] = [now, 1, 0]
            if len(self._windows) > 10_000:  # many templates: forget the oldest windows
                for old in sorted(self._windows, key=lambda k: self._windows[k][0])[:5_000]:
                    del self._windows[old]
            if suppressed:
                record.msg = (
                    f"{record.msg} [{suppressed} similar lines suppressed in the last {self.window_s:.0f}s]"
                )
            return True
        if w[1] < self.burst:
            w[1] += 1
            return True
        w[2] += 1
        return False


class _Masked(str):
    """Text that ``%r`` prints as it is (no quotes), so the line reads like the original."""

    __slots__ = ()

    def __repr__(self) -> str:
        return str(self)


class Redact(logging.Filter):
    """Replace raw-bytes arguments of every record by ``<N bytes #hash>``.

    >>> f = Redact(key=b"k")
    >>> args = (b"u:alice", b"{}", 3)
    >>> r = logging.LogRecord("faust", logging.DEBUG, "", 0, "send k=%r v=%r n=%d", args, None)
    >>> f.filter(r), r.getMessage()
    (True, 'send k=<7 bytes #...> v=<2 bytes #...> n=3')
    """

    def __init__(self, key: bytes | None = None) -> None:
        super().__init__()
        self.key = key if key is not None else secrets.token_bytes(16)

    def _mask(self, value: object) -> object:
        if isinstance(value, bytes | bytearray | memoryview):
            raw = bytes(value)
            digest = hmac.new(self.key, raw, hashlib.sha256).hexdigest()[:8]
            return _Masked(f"<{len(raw)} bytes #{digest}>")
        return value

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and args:
            record.args = tuple(self._mask(a) for a in args)
        elif isinstance(args, dict) and args:
            record.args = {k: self._mask(v) for k, v in args.items()}
        return True


def install(logger: logging.Logger | None = None, **kwargs: float) -> RateLimit:
    """Put one :class:`Redact` and one :class:`RateLimit` on every handler of ``logger`` (the
    root logger by default)."""
    logger = logger or logging.getLogger()
    limit, redact = RateLimit(**kwargs), Redact()  # type: ignore[arg-type]
    for handler in logger.handlers:
        if not any(isinstance(f, Redact) for f in handler.filters):
            handler.addFilter(redact)
        if not any(isinstance(f, RateLimit) for f in handler.filters):
            handler.addFilter(limit)
    return limit
