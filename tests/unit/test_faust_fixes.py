"""The producer buffer drains completely before a commit (app.faust_fixes)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from app.faust_fixes import drain_before_commit


async def _fill_slow_buffer(app: faust.App, n: int, per_message_s: float) -> Any:
    buffer = app.producer.buffer
    sent: list[int] = []

    async def slow_publish(fut: Any, wait: bool = False) -> None:
        await asyncio.sleep(per_message_s)
        sent.append(fut)

    class _Channel:
        publish_message = staticmethod(slow_publish)

    class _Message:
        channel = _Channel()

    class _Fut:
        message = _Message()

    for _ in range(n):
        buffer.put(_Fut())
    await buffer.start()
    return buffer, sent


async def test_stock_flush_returns_with_messages_still_queued() -> None:
    app = faust.App("t-stock", autodiscover=False)
    buffer, _ = await _fill_slow_buffer(app, 3, 0.3)
    try:
        await buffer.flush()
        assert buffer.size > 0  # the faust behaviour the fix exists for
        await asyncio.sleep(1.2)  # let it drain so that stop() can flush
    finally:
        await buffer.stop()


async def test_drained_flush_waits_for_every_message() -> None:
    app = faust.App("t-fixed", autodiscover=False)
    drain_before_commit(app)
    buffer, sent = await _fill_slow_buffer(app, 3, 0.3)
    try:
        await buffer.flush()
        assert buffer.size == 0 and len(sent) == 3
    finally:
        await buffer.stop()
