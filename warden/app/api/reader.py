"""The API's view of the database: the indexer's and the executor's read-only readers
over one read-only database of the API's own, and the read snapshot that makes several
reads agree.

Reads that must agree with each other (a session and its intents, a page and its
look-ahead row, the figures of one /metrics scrape) run inside one `snapshot()`, so a
commit by the writer in between cannot tear them. A snapshot holds one of the database's
read connections for the request (`api.read_connections`); taking one goes through the
`ReadGate`, which answers 503 rather than letting requests queue without end.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import AsyncIterator
from dataclasses import dataclass

from database import Database
from executor import STATES, OutboxReads
from indexer import SessionReads
from indexer.reads import LogCounts
from notify import Deliveries, EventReads
from warden.app.api.cache import Flights
from warden.app.api.gate import ReadGate

_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("api_snapshot", default=False)


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
    def __init__(self, db: Database, gate: ReadGate | None = None) -> None:
        self.db = db
        self.gate = gate if gate is not None else ReadGate()
        self.sessions = SessionReads(db)
        self.outbox = OutboxReads(db)
        self.events = EventReads(db)
        self.deliveries = Deliveries(db)
        self._status: tuple[int, StatusFigures] | None = None
        self._status_flights: Flights[StatusFigures] = Flights()

    async def status_figures(self) -> StatusFigures:
        """Read in one snapshot; kept while the database's `data_version` stays (read
        before the queries, so what is kept is never older than the version it is kept
        under): /status is the route every dashboard polls. Requests arriving while the
        figures of their version are being read wait for those."""
        version = await self.db.data_version()
        if version is None:
            return await self._read_status()
        if self._status is not None and self._status[0] == version:
            return self._status[1]
        running = self._status_flights.running(version)
        if running is not None:
            shared = await self._status_flights.join(running)
            if shared is not None:
                return shared
            return await self._read_status()
        self._status_flights.lead(version)
        figures = None
        try:
            figures = await self._read_status()
            self._status = (version, figures)
            return figures
        finally:
            self._status_flights.land(version, figures)

    async def _read_status(self) -> StatusFigures:
        async with self.snapshot():
            return StatusFigures(
                await self.sessions.checkpoint(),
                await self.intent_counts(),
                await self.sessions.status_counts(),
            )

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[None]:
        """One consistent read view for the statements inside, on a read connection of
        this request's own (`Busy` when none comes free in time; a shared in-memory
        database, handed over by the writer, cannot have one: reads run as they come)."""
        if _inside.get():  # already this task's: one connection per request
            yield
            return
        async with self.gate.slot(), self.db.snapshot():
            token = _inside.set(True)
            try:
                yield
            finally:
                _inside.reset(token)

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
