"""How many requests read the database at once, and how many may wait for it.

The API reads through a few connections (`api.read_connections`): one per request that
reads, for its one snapshot. When all are taken, a request waits in line, but not
forever and not in any number: past `api.read_queue` waiting, or after `api.read_wait`
seconds in line, it is answered 503 with `Retry-After` at once (`Busy`), so a flood of
clients (or a few slow statements) shows as refusals a client can retry, never as
requests that hang and pile up memory.

    gate = ReadGate(ReadLimits(connections=4, queue=512, wait=5.0))
    async with gate.slot():          # Busy (503) when the line is full or too slow
        ...                          # this request's snapshot
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass

from warden.app.api.errors import Busy


@dataclass(frozen=True)
class ReadLimits:
    """`api.read_connections`, `api.read_queue`, `api.read_wait` (docs/config.md)."""

    connections: int = 4  # read connections, so requests reading at once
    queue: int = 512  # requests that may wait for one; the next is refused at once
    wait: float = 5.0  # seconds a request may wait for one, then 503


DEFAULT_READS = ReadLimits()


class ReadGate:
    def __init__(self, limits: ReadLimits = DEFAULT_READS) -> None:
        self.limits = limits
        self._free = asyncio.Semaphore(limits.connections)
        self.waiting = 0  # requests in line now
        self.reading = 0  # requests holding a read connection now
        self.refused = 0  # requests answered 503 since the start

    @property
    def retry_after(self) -> int:
        """Seconds a refused client is told to wait (the `Retry-After` header)."""
        return max(1, math.ceil(self.limits.wait / 5))

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        limits = self.limits
        if self._free.locked() and self.waiting >= limits.queue:
            self.refused += 1
            line = (
                f"{self.waiting} requests are already waiting for one"
                if limits.queue
                else "none may wait for one"
            )
            raise Busy(
                f"the API is busy: all {limits.connections} of its database read connections "
                f"are taken and {line} (api.read_queue); retry in a moment",
                self.retry_after,
            )
        self.waiting += 1
        try:
            async with asyncio.timeout(limits.wait):
                await self._free.acquire()
        except TimeoutError:
            self.refused += 1
            raise Busy(
                f"the API is busy: no database read connection came free within "
                f"{limits.wait:g} s (api.read_wait, {limits.connections} connections); "
                "retry in a moment",
                self.retry_after,
            ) from None
        finally:
            self.waiting -= 1
        self.reading += 1
        try:
            yield
        finally:
            self.reading -= 1
            self._free.release()
