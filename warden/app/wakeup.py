"""What ends the leader loop's pause between steps: the poll interval running out, a block
the node announces over its websocket (`chain.new_heads`), or a stop or SIGHUP (the
daemon's `intake_stop`).

An announcement is only a reason to look (`chain.heads`): the step that follows asks the
node over HTTP as a polled one does. The flag is cleared when a step begins, so a block
announced while a step runs makes the next pause end at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from chain import HeadStats, HeadWatcher


class Wakeup:
    def __init__(self, intake_stop: asyncio.Event) -> None:
        self.intake_stop = intake_stop
        self.announced = asyncio.Event()

    def step_begins(self) -> None:
        self.announced.clear()

    async def pause(self, poll_interval: float) -> None:
        """Until the next poll, an announced block, a stop or a SIGHUP."""
        waits = [
            asyncio.ensure_future(self.intake_stop.wait()),
            asyncio.ensure_future(self.announced.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=poll_interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    @contextlib.asynccontextmanager
    async def watching(self, url: str | None, timeout: float) -> AsyncIterator[HeadStats | None]:
        """The node's newHeads subscription at `url` while inside (None: polling only);
        yields its figures for /metrics."""
        if url is None:
            yield None
            return
        watcher = HeadWatcher(url, self.announced.set, timeout=timeout)
        task = asyncio.create_task(watcher.run(), name="new-heads")
        try:
            yield watcher.stats
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
