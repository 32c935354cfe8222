"""The API's view of the database: the indexer's and the executor's read-only readers
over one read-only database of the API's own, and the read snapshot that makes several
reads agree.

Reads that must agree with each other (a session and its intents, a page and its
look-ahead row, the figures of one /metrics scrape) run inside one `snapshot()`, so a
commit by the writer in between cannot tear them.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass

from database import Database
from executor import STATES, OutboxReads
from indexer import SessionReads
from indexer.reads import LogCounts
from notify import Deliveries, EventReads


@dataclass(frozen=True)
class Figures:
    """What /metrics reports from the database, read in one snapshot."""

    checkpoint: int | None
    logs: LogCounts
    sessions: dict[str, int]  # by status
    intents: dict[str, int]  # by state
    deliveries: dict[tuple[str, str], int]  # (channel, state) -> notifications
    oldest_pending_ms: dict[str, int]  # channel -> creation of its oldest pending delivery


@dataclass(frozen=True)
class StatusFigures:
    """What /status reports from the database (the rest is the daemon's live state)."""

    checkpoint: int | None
    intents: dict[str, int]  # by state, zeros included
    sessions: dict[str, int]  # by status


class ApiReader:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.sessions = SessionReads(db)
        self.outbox = OutboxReads(db)
        self.events = EventReads(db)
        self.deliveries = Deliveries(db)
        self._status: tuple[int, StatusFigures] | None = None

    async def status_figures(self) -> StatusFigures:
        """Read in one snapshot; kept while the database's `data_version` stays (read
        before the queries, so what is kept is never older than the version it is kept
        under): /status is the route every dashboard polls."""
        version = await self.db.data_version()
        if version is not None and self._status is not None and self._status[0] == version:
            return self._status[1]
        async with self.snapshot():
            figures = StatusFigures(
                await self.sessions.checkpoint(),
                await self.intent_counts(),
                await self.sessions.status_counts(),
            )
        if version is not None:
            self._status = (version, figures)
        return figures

    def snapshot(self) -> AbstractAsyncContextManager[None]:
        """One consistent read view for the statements inside (a shared in-memory
        database, handed over by the writer, cannot have one: reads run as they come)."""
        return self.db.snapshot()

    async def intent_counts(self) -> dict[str, int]:
        """Intents by state, every state present (zeros included)."""
        return {**dict.fromkeys(STATES, 0), **await self.outbox.state_counts()}

    async def figures(self) -> Figures:
        return Figures(
            checkpoint=await self.sessions.checkpoint(),
            logs=await self.sessions.log_counts(),
            sessions=await self.sessions.status_counts(),
            intents=await self.intent_counts(),
            deliveries=await self.deliveries.counts(),
            oldest_pending_ms=await self.deliveries.oldest_pending_ms(),
        )
