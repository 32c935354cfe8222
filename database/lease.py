"""Leadership among replicas sharing one database: a lease row with a TTL and a fencing
epoch (docs/deployment.md explains why this gives at most one mined close per intent).

    lease = await try_acquire(db, "host-a:4242", ttl_ms=6_000)   # None: someone holds it
    lease = await renew(db, lease, ttl_ms=6_000)                  # None: deposed
    db.fence = lease   # from now on every write transaction checks the epoch inside it

Times are the database server's clock (one clock for every replica); a replica's own
clock only decides how long it trusts a lease it renewed (`warden.app.leadership`).
Taking over bumps the epoch, so a deposed leader's next write transaction fails its fence
check (`Deposed`) and rolls back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from database.base import Database
from database.errors import DatabaseError, Deposed

__all__ = ["COMPONENT", "MIGRATIONS", "Deposed", "Lease", "current", "end_older", "release",
           "renew", "server_ms", "try_acquire"]  # fmt: skip

COMPONENT = "leadership"
MIGRATIONS = [
    """
    CREATE TABLE leader (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        holder     TEXT NOT NULL,
        epoch      INTEGER NOT NULL,
        renewed_ms INTEGER NOT NULL,
        expires_ms INTEGER NOT NULL
    );
    INSERT INTO leader (id, holder, epoch, renewed_ms, expires_ms) VALUES (1, '', 0, 0, 0)
    """,
]


@dataclass(frozen=True)
class Lease:
    holder: str
    epoch: int
    renewed_ms: int  # the server's clock at the last renewal
    expires_ms: int  # the server's clock


async def server_ms(db: Database) -> int:
    """The database server's clock, in ms (SQLite: this host's, the only one)."""
    if db.dialect == "postgresql":
        value = await db.fetchval(
            "SELECT CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)"
        )
        return int(value)
    return time.time_ns() // 1_000_000


async def current(db: Database) -> Lease:
    row = await db.fetchone("SELECT holder, epoch, renewed_ms, expires_ms FROM leader WHERE id = 1")
    if row is None:
        raise DatabaseError("the leader table has no row: run the leadership migrations")
    return Lease(str(row[0]), int(row[1]), int(row[2]), int(row[3]))


async def try_acquire(db: Database, holder: str, ttl_ms: int) -> Lease | None:
    """Take the lease if it expired (or is this holder's, after a restart with the same
    identity: the epoch still moves on); None while another holds it."""
    now = await server_ms(db)
    row = await db.fetchone(
        "UPDATE leader SET holder = ?, epoch = epoch + 1, renewed_ms = ?, expires_ms = ? "
        "WHERE id = 1 AND (expires_ms < ? OR holder = ?) RETURNING epoch",
        (holder, now, now + ttl_ms, now, holder),
    )
    return None if row is None else Lease(holder, int(row[0]), now, now + ttl_ms)


async def renew(db: Database, lease: Lease, ttl_ms: int) -> Lease | None:
    """Extend the lease; None when it is no longer ours (taken over: the epoch moved)."""
    now = await server_ms(db)
    changed = await db.execute(
        "UPDATE leader SET renewed_ms = ?, expires_ms = ? WHERE id = 1 AND holder = ? "
        "AND epoch = ?",
        (now, now + ttl_ms, lease.holder, lease.epoch),
    )
    return Lease(lease.holder, lease.epoch, now, now + ttl_ms) if changed == 1 else None


async def end_older(db: Database, lease: Lease) -> int:
    """PostgreSQL, just after a takeover: end every transaction still open under an older
    epoch (a leader frozen or cut off in the middle of one). Its fence check would fail at
    its commit anyway; ended now, the rows it locked do not hold up the new leader, even
    when its server process is busy (blocked sending to a client that reads nothing) and
    so never idle. Ending another session takes the same database role (or
    pg_signal_backend). How many were ended."""
    if db.dialect != "postgresql":
        return 0
    from database.postgres import FENCED, fenced_name

    rows = await db.fetch(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
        "current_database() AND pid <> pg_backend_pid() AND application_name LIKE ? "
        "AND application_name <> ?",
        (f"{FENCED}%", fenced_name(lease.epoch)),
    )
    return sum(1 for r in rows if r[0])


async def release(db: Database, lease: Lease) -> None:
    """Let the lease expire now (a clean shutdown): a standby takes over at its next try,
    not a TTL later."""
    await db.execute(
        "UPDATE leader SET expires_ms = 0 WHERE id = 1 AND holder = ? AND epoch = ?",
        (lease.holder, lease.epoch),
    )
