"""Rate-limited logs: an error storm (a broker down, a Redis outage) writes a few lines, not
a hundred thousand.

:class:`RateLimit` is a :class:`logging.Filter` on the root logger's handlers (``nba worker``
installs it): per logger, level and message template (the format string, not the formatted
text), at most ``burst`` records pass in each window of ``window_s`` seconds. When a window that
suppressed records ends, the next record that passes says how many were dropped. Counting is by
template, so ``"fetch failed for %s"`` is one source however many partitions it names.

Clock: wall time (monotonic), since a log storm is an operational event, not a stream one.
"""

from __future__ import annotations

import logging
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


def install(logger: logging.Logger | None = None, **kwargs: float) -> RateLimit:
    """Put one :class:`RateLimit` on every handler of ``logger`` (the root logger by default)."""
    logger = logger or logging.getLogger()
    limit = RateLimit(**kwargs)  # type: ignore[arg-type]
    for handler in logger.handlers:
        if not any(isinstance(f, RateLimit) for f in handler.filters):
            handler.addFilter(limit)
    return limit
