"""Answers kept until the database changes.

Many clients asking the same pages (a dashboard per operator, a front end polling a
user's sessions) would each run the same queries through the API's few read connections,
a snapshot each. A route marked `cached` is answered from here while the database's
`data_version` (SQLite: it moves with every commit of the daemon's writer) is the one the
answer was computed at; any commit makes every kept answer stale at once. An answer is
kept only if it was computed at or after the version it is filed under (the version is
read before the queries), so a kept answer is never older than the version it claims.

Bounded by entries and bytes (least recently used go first). PostgreSQL has no such
counter: nothing is kept there (`data_version()` is None).

Right after a commit every kept answer is stale, and the clients asking the same page
would each compute it again at once. `Flights` lets one of them compute it (the leader);
the others asking the same key at the same version wait for its result instead of a read
connection. A leader that fails (an error, a refusal, a client gone) hands its followers
nothing: each then computes its own answer, as without the flight.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Kept:
    version: int
    body: bytes


class ResponseCache:
    def __init__(self, max_entries: int = 2_048, max_bytes: int = 32 * 2**20) -> None:
        self.max_entries, self.max_bytes = max_entries, max_bytes
        self._kept: OrderedDict[str, Kept] = OrderedDict()
        self._bytes = 0
        self.hits = self.misses = 0

    def get(self, key: str, version: int) -> bytes | None:
        kept = self._kept.get(key)
        if kept is None or kept.version != version:
            self.misses += 1
            return None
        self._kept.move_to_end(key)
        self.hits += 1
        return kept.body

    def put(self, key: str, version: int, body: bytes) -> None:
        if len(body) > self.max_bytes // 16:
            return  # one answer must not push out most of the others
        old = self._kept.pop(key, None)
        if old is not None:
            self._bytes -= len(old.body)
        self._kept[key] = Kept(version, body)
        self._bytes += len(body)
        while len(self._kept) > self.max_entries or self._bytes > self.max_bytes:
            _, dropped = self._kept.popitem(last=False)
            self._bytes -= len(dropped.body)

    def __len__(self) -> int:
        return len(self._kept)


class Flights(Generic[T]):
    """One computation per key at a time; who asks meanwhile gets its result."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Future[T | None]] = {}
        self.joined = 0  # answers taken from another request's computation

    def running(self, key: Hashable) -> asyncio.Future[T | None] | None:
        return self._running.get(key)

    def lead(self, key: Hashable) -> None:
        self._running[key] = asyncio.get_running_loop().create_future()

    def land(self, key: Hashable, result: T | None) -> None:
        """The leader is done: `result` for those waiting, None if it has nothing to share
        (they compute their own). Call it whatever happened (a `finally`)."""
        future = self._running.pop(key, None)
        if future is not None and not future.done():
            future.set_result(result)

    async def join(self, future: asyncio.Future[T | None]) -> T | None:
        """The leader's result (None: compute it yourself). Shielded: a follower that is
        cancelled does not cancel what the others wait for."""
        result = await asyncio.shield(future)
        if result is not None:
            self.joined += 1
        return result
