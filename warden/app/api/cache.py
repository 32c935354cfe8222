"""Answers kept until the database changes.

Many clients asking the same pages (a dashboard per operator, a front end polling a
user's sessions) would each run the same queries through the API's one read connection,
one snapshot at a time. A route marked `cached` is answered from here while the database's
`data_version` (SQLite: it moves with every commit of the daemon's writer) is the one the
answer was computed at; any commit makes every kept answer stale at once. An answer is
kept only if it was computed at or after the version it is filed under (the version is
read before the queries), so a kept answer is never older than the version it claims.

Bounded by entries and bytes (least recently used go first). PostgreSQL has no such
counter: nothing is kept there (`data_version()` is None).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


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
