"""This replica's role among those sharing one database: leader (indexes, decides, sends)
or standby (serves the API, ready to take over). docs/deployment.md tells the whole story.

On SQLite there is one process per database (`Database.exclusive`), so it always leads.
On PostgreSQL the role is a lease (`database.lease`): the standby tries to take it every
third of its TTL; the leader renews it as often, and

- writes under a fence: every write transaction checks the lease's epoch inside itself,
  so once another replica took over, the deposed leader's next write fails (`Deposed`);
- sends only while its own clock says the lease it last renewed cannot have expired for
  anyone else: `ttl - margin` after the moment it *asked* for the renewal. A leader that
  cannot renew (cut off from the database, frozen, starved) stops sending before a
  standby may take over; a frozen one that wakes finds its trust expired and its next
  write refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from database import Database, Deposed, migrate
from database import lease as leases

log = logging.getLogger("warden.leadership")


@dataclass(frozen=True)
class _Nobody:
    """The fence of a replica that stepped down: matches no lease row, so a stray write
    after the step-down fails too."""

    holder: str = ""
    epoch: int = -1


def default_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Leadership:
    def __init__(
        self,
        db: Database,
        *,
        identity: str | None = None,
        ttl: float = 6.0,
        margin: float = 1.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < margin < ttl:
            raise ValueError(f"the margin ({margin} s) must be above 0 and below the TTL ({ttl} s)")
        self.db = db
        self.identity = identity or default_identity()
        self.solo = db.dialect == "sqlite"
        self.ttl, self.margin, self.clock = ttl, margin, clock
        self.lease: leases.Lease | None = None
        self.trusted_until = 0.0  # our clock: sending stops here unless renewed
        self.takeovers = 0
        self.deposed_reason: str | None = None
        self.leader_seen: str | None = None  # who holds it, as a standby last read
        self.unreachable = False  # the standby's last try could not reach the database

    @property
    def role(self) -> str:
        return "leader" if self.solo or self.lease is not None else "standby"

    @property
    def epoch(self) -> int | None:
        return self.lease.epoch if self.lease is not None else None

    async def setup(self) -> None:
        if not self.solo:
            await migrate(self.db, leases.COMPONENT, leases.MIGRATIONS)

    def trust_left(self) -> float:
        """Seconds this leader may still send without another renewal."""
        if self.solo:
            return float("inf")
        return max(0.0, self.trusted_until - self.clock()) if self.lease is not None else 0.0

    def may_send(self) -> bool:
        """Whether a transaction may go out now (checked before every broadcast)."""
        if self.solo:
            return True
        return self.lease is not None and self.clock() < self.trusted_until

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait as a standby until this replica leads (True), or `stop` is set (False)."""
        if self.solo:
            return True
        ttl_ms = int(self.ttl * 1000)
        while not stop.is_set():
            asked = self.clock()
            try:
                lease = await leases.try_acquire(self.db, self.identity, ttl_ms)
            except Exception as exc:
                if not self.unreachable:  # once per outage, not every try
                    log.warning("standby: cannot reach the database to try the lease (%s: "
                                "%s); trying every %.1f s", type(exc).__name__, exc,
                                self.ttl / 3)  # fmt: skip
                self.unreachable = True
                lease = None
            else:
                if self.unreachable:
                    log.info("standby: the database answers again")
                self.unreachable = False
            if lease is not None:
                self._lead(lease, asked)
                try:
                    ended = await leases.end_older(self.db, lease)
                except Exception as exc:  # a role that may not: the idle limit ends them
                    log.warning("leadership: cannot end the transactions of older epochs "
                                "(%s); the server ends them once idle for the TTL",
                                exc)  # fmt: skip
                else:
                    if ended:
                        log.warning("leadership: ended %d transaction(s) still open under an "
                                    "older epoch", ended)  # fmt: skip
                return True
            with contextlib.suppress(Exception):
                holder = (await leases.current(self.db)).holder
                if holder != self.leader_seen:
                    log.info("standby: %s leads", holder or "nobody")
                    self.leader_seen = holder
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.ttl / 3)
        return False

    def _lead(self, lease: leases.Lease, asked: float) -> None:
        self.lease = lease
        self.trusted_until = asked + self.ttl - self.margin
        self.takeovers += 1
        self.deposed_reason = None
        self.leader_seen = self.identity
        self.db.fence = lease
        # A write transaction frozen or cut off halfway holds the rows it locked: the
        # server ends it once idle for the TTL (and a new leader ends it at once).
        self.db.idle_limit_ms = int(self.ttl * 1000)
        log.warning("leadership: this replica (%s) leads now, epoch %d", self.identity, lease.epoch)

    async def keep(self) -> None:
        """The leader's renewal loop (a task beside the daemon's loop): renew every third
        of the TTL; a refused renewal steps down. Cancelled when the leader stops."""
        if self.solo:
            return
        ttl_ms = int(self.ttl * 1000)
        while self.lease is not None:
            await asyncio.sleep(self.ttl / 3)
            lease = self.lease
            if lease is None:
                return
            asked = self.clock()
            try:
                renewed = await leases.renew(self.db, lease, ttl_ms)
            except Exception as exc:
                log.warning("leadership: renewing the lease failed (%s); sending stops in "
                            "%.1f s unless a renewal succeeds",
                            exc, max(0.0, self.trusted_until - self.clock()))  # fmt: skip
                continue
            if renewed is None:
                self.step_down("the lease was taken over")
                return
            self.lease = renewed
            self.trusted_until = asked + self.ttl - self.margin

    def step_down(self, reason: str) -> None:
        if self.lease is None and (self.solo or self.deposed_reason is not None):
            return  # nothing held, or stepped down already (said once)
        log.warning("leadership: stepping down (epoch %s): %s", self.epoch, reason)
        self.lease = None
        self.trusted_until = 0.0
        self.deposed_reason = reason
        self.db.fence = _Nobody()

    def check(self) -> None:
        """Raise `Deposed` once the renewal loop stepped down (the daemon's loop asks at
        every step)."""
        if not self.solo and self.lease is None:
            raise Deposed(self.deposed_reason or "not the leader")

    async def release(self) -> None:
        """On a clean stop: let the lease expire now, so a standby takes over at once."""
        lease = self.lease
        if self.solo or lease is None:
            return
        self.step_down("shutting down")
        with contextlib.suppress(Exception):
            await leases.release(self.db, lease)
