"""The worker's stop is bounded: a stop that hangs ends by the watchdog's exit (app.shutdown)."""

from __future__ import annotations

import asyncio
import contextlib
import threading

import faust
import mode

from app.shutdown import EX_SOFTWARE, BoundedWorker, ShutdownWatchdog


class _Hangs(mode.Service):
    """A service whose stop never returns (a client retrying a broker that has gone)."""

    async def on_stop(self) -> None:
        await asyncio.Event().wait()


async def test_a_stop_that_hangs_is_ended_by_the_watchdog_with_its_code() -> None:
    codes: list[int] = []
    fired = threading.Event()
    worker = BoundedWorker(faust.App("t-shutdown"), shutdown_timeout_s=0.05, loglevel="warning")
    worker.add_dependency(_Hangs())  # stopped with the worker, as the app's consumer is
    worker.watchdog.exit = lambda code: (codes.append(code), fired.set())
    stop = asyncio.ensure_future(worker.stop())
    assert await asyncio.to_thread(fired.wait, 10.0)
    assert codes == [EX_SOFTWARE] and not stop.done()  # the stop itself was still hanging
    stop.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await stop


def test_a_disarmed_watchdog_does_not_fire_and_a_second_arm_keeps_the_first_clock() -> None:
    fired = threading.Event()
    dog = ShutdownWatchdog(0.05, exit=lambda code: fired.set())
    dog.arm()
    first = dog._timer
    dog.arm()
    assert dog._timer is first
    dog.disarm()
    assert not fired.wait(0.3)
