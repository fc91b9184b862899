"""A bound, in wall-clock time, on how long the worker may take to stop.

Faust stops its services one by one, and a consumer or producer whose broker has gone keeps
retrying, so a worker asked to stop can hang for ever (seen when Kafka stopped during the
worker's own shutdown). :class:`ShutdownWatchdog` is armed when the stop begins; if the process
is still alive ``timeout_s`` later it logs and exits with ``code`` at once, without a clean stop.
Nothing is lost that a crash would not lose: offsets not yet committed are consumed again, and
the tables recover from their changelogs (at least once).

The watchdog is a daemon thread, so it fires even when the event loop is blocked. Once armed it
stays armed until the process ends: :class:`BoundedWorker` is for a process that exits when its
worker stops (``nba worker``), not for a worker embedded in a longer-lived one.

Clock: wall time (a stop is an operational event, not a stream one).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import faust

log = logging.getLogger(__name__)

EX_SOFTWARE = 70
"""The exit code of a stop that ran out of time (``sysexits.h``: internal software error)."""


class ShutdownWatchdog:
    """Exit the process ``timeout_s`` after :meth:`arm` unless it has ended before.

    >>> fired = threading.Event()
    >>> dog = ShutdownWatchdog(0.01, exit=lambda code: fired.set())
    >>> dog.arm(); dog.arm()  # a second stop signal does not restart the clock
    >>> fired.wait(5.0)
    True
    """

    def __init__(
        self, timeout_s: float, exit: Callable[[int], object] = os._exit, code: int = EX_SOFTWARE
    ) -> None:
        self.timeout_s = timeout_s
        self.exit = exit
        self.code = code
        self._timer: threading.Timer | None = None

    def arm(self) -> None:
        """Start the clock (once)."""
        if self._timer is not None:
            return
        self._timer = threading.Timer(self.timeout_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        """Stop the clock (the stop finished in time)."""
        if self._timer is not None:
            self._timer.cancel()

    def _expire(self) -> None:
        log.error(
            "worker still stopping after %.0fs (wall); exiting with code %d without a clean stop",
            self.timeout_s,
            self.code,
        )
        logging.shutdown()
        self.exit(self.code)


class BoundedWorker(faust.Worker):  # type: ignore[misc]
    """A Faust worker whose stop a :class:`ShutdownWatchdog` of ``shutdown_timeout_s`` bounds."""

    def __init__(self, *services: Any, shutdown_timeout_s: float, **kwargs: Any) -> None:
        super().__init__(*services, **kwargs)
        self.watchdog = ShutdownWatchdog(shutdown_timeout_s)

    async def on_stop(self) -> None:
        self.watchdog.arm()
        await super().on_stop()

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        from app.logs import install

        install(logger)  # an outage's error storm writes a few lines per source, not thousands
