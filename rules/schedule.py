"""When each session must next be evaluated because chain time alone can change a rule.

A heap of (due time, wallet) with replace-on-reschedule: the dict holds the one live due
time per wallet; heap entries that no longer match it are dropped when they surface, and
the heap is rebuilt when stale entries outnumber live ones, so memory stays proportional
to the tracked sessions.
"""

from __future__ import annotations

import heapq


class TimeScheduler:
    def __init__(self) -> None:
        self._due: dict[str, int] = {}
        self._heap: list[tuple[int, str]] = []

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, wallet: str) -> bool:
        return wallet in self._due

    def due_at(self, wallet: str) -> int | None:
        return self._due.get(wallet)

    def schedule(self, wallet: str, at: int | None) -> None:
        """Evaluate `wallet` once chain time reaches `at`; None forgets it."""
        if at is None:
            self.cancel(wallet)
            return
        if self._due.get(wallet) == at:
            return
        self._due[wallet] = at
        heapq.heappush(self._heap, (at, wallet))
        self._compact()

    def cancel(self, wallet: str) -> None:
        if self._due.pop(wallet, None) is not None:
            self._compact()

    def next_due(self) -> int | None:
        self._drop_stale()
        return self._heap[0][0] if self._heap else None

    def due(self, now: int) -> list[str]:
        """Wallets due at or before `now`, earliest first; they are no longer scheduled
        (evaluating them schedules them again if needed)."""
        out: list[str] = []
        heap, live = self._heap, self._due
        while heap and heap[0][0] <= now:
            at, wallet = heapq.heappop(heap)
            if live.get(wallet) == at:
                del live[wallet]
                out.append(wallet)
        return out

    def _drop_stale(self) -> None:
        heap, live = self._heap, self._due
        while heap and live.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)

    def _compact(self) -> None:
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [(at, wallet) for wallet, at in self._due.items()]
            heapq.heapify(self._heap)
