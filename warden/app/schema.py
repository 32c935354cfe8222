"""The whole schema a daemon runs on, and what a start does before it: back up, migrate
every pending step in one transaction, and check that the database belongs to the chain
and factory this daemon serves.

    report = await upgrade(db, cfg, chain_id=31337, factory="0x…")

- `plan(dialect)`: each package's numbered migrations (indexer, executor, notify, the
  chain identity), in the order they are applied (the leadership lease only on
  PostgreSQL, where replicas share the database).
- A start that would apply steps to a database that already holds data first writes a
  backup (`warden.app.backups.before_migration`: next to the database, or in
  `backups.directory`, the last `backups.keep` kept) and says where it is. The steps then
  run in ONE transaction (`database.migrate_all`): one that fails leaves the database as
  it was, and the error names the backup.
- `chain_identity` (component `warden`, one row): the chain id and factory the database
  was indexed for, written by the first start. A start, a restore or an import for
  another chain or factory is refused: mixing two chains' sessions in one outbox would
  send closes for sessions that do not exist on the chain served.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from database import (
    Database,
    DatabaseError,
    FileCheck,
    NotABackup,
    Plan,
    SchemaTooNew,
    check_sqlite,
    migrate_all,
    pending,
    versions,
)
from database.lease import COMPONENT as LEADERSHIP
from database.lease import MIGRATIONS as LEADERSHIP_MIGRATIONS
from database.migrations import Step
from executor.schema import COMPONENT as EXECUTOR
from executor.schema import MIGRATIONS as EXECUTOR_MIGRATIONS
from indexer.schema import COMPONENT as INDEXER
from indexer.schema import MIGRATIONS as INDEXER_MIGRATIONS
from notify.schema import COMPONENT as NOTIFY
from notify.schema import MIGRATIONS as NOTIFY_MIGRATIONS
from warden.app.backups import Backup, BackupError, before_migration
from warden.app.storage import storage_problem

log = logging.getLogger("warden.schema")

IDENTITY = "warden"
IDENTITY_MIGRATIONS: list[Step] = [
    """
    CREATE TABLE chain_identity (
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        chain_id    INTEGER NOT NULL,
        factory     TEXT NOT NULL,
        recorded_ms INTEGER NOT NULL
    )
    """,
]


class WrongDatabase(DatabaseError):
    """The database was indexed for another chain or factory than the one served."""


class BackupFailed(DatabaseError):
    """The backup a migration needs could not be written: nothing was migrated."""


class NotRestorable(NotABackup):
    """A sound backup this database must not be replaced by: a newer schema, or another
    chain's or factory's."""


class MigrationFailed(DatabaseError):
    """A start's migrations failed and were rolled back; the backup taken before them is
    named in the message."""


@dataclass(frozen=True)
class Identity:
    chain_id: int
    factory: str

    def __str__(self) -> str:
        return f"chain {self.chain_id}, factory {self.factory}"


@dataclass(frozen=True)
class Upgrade:
    moved: dict[str, tuple[int, int]]  # component → (from, to); {} when nothing was pending
    backup: Backup | None  # written before migrating, when there was data to save


def plan(dialect: str) -> Plan:
    """Every component of a daemon's database and its migrations, in the order applied."""
    out: list[tuple[str, list[Step]]] = [
        (INDEXER, list(INDEXER_MIGRATIONS)),
        (EXECUTOR, list(EXECUTOR_MIGRATIONS)),
        (NOTIFY, list(NOTIFY_MIGRATIONS)),
        (IDENTITY, list(IDENTITY_MIGRATIONS)),
    ]
    if dialect == "postgresql":
        out.append((LEADERSHIP, list(LEADERSHIP_MIGRATIONS)))
    return out


def known_versions(dialect: str = "postgresql") -> dict[str, int]:
    return {component: len(steps) for component, steps in plan(dialect)}


def describe_moves(moved: dict[str, tuple[int, int]]) -> str:
    return ", ".join(f"{c} {a} → {b}" for c, (a, b) in moved.items())


async def upgrade(
    db: Database,
    source: str | Path,
    where: str | Path,
    *,
    keep: int,
    directory: Path | None,
    chain_id: int | None = None,
    factory: str | None = None,
    steps: Plan | None = None,
) -> Upgrade:
    """Back up (when there is data and something to migrate), migrate in one transaction,
    then record or check the chain identity (when `chain_id` and `factory` are given).
    `source`: the SQLite path or the PostgreSQL URL with its password (what pg_dump needs);
    `where`: the same as `warden.app.settings.where` shows it (a Path: a SQLite file).
    `steps`: the plan to apply (default `plan(db.dialect)`; tests insert a failing step)."""
    wanted = plan(db.dialect) if steps is None else steps
    current = await versions(db)
    moved = pending(current, wanted)  # SchemaTooNew before anything is written
    backup: Backup | None = None
    if moved and any(current.values()):
        if chain_id is not None and factory is not None:
            # Checked before the backup and the migration: a database of another chain
            # is refused as it is, untouched.
            await check_identity(db, Identity(chain_id, factory))
        log.info("the schema needs migrating (%s): backing up first", describe_moves(moved))
        try:
            backup = await before_migration(source, where, current, keep=keep, directory=directory)
        except (OSError, sqlite3.Error, BackupError) as exc:
            folder = directory or "the database's directory"
            raise BackupFailed(
                f"the backup before migrating ({describe_moves(moved)}) could not be written "
                f"in {folder}: {type(exc).__name__}: {exc}. Nothing was migrated; free space "
                "there, make it writable, or set backups.directory to another directory, "
                "then start again"
            ) from exc
    try:
        done = await migrate_all(db, wanted)
    except Exception as exc:
        saved = (
            f"the backup taken before it is {backup.path}"
            if backup is not None
            else "no backup was needed (the database held no data yet)"
        )
        if storage_problem(exc, where) is not None:  # the disk: exit 3 as any write's
            log.error("migrating failed and was rolled back; %s", saved)
            raise
        raise MigrationFailed(
            f"migrating the database {where} failed ({describe_moves(moved)}): "
            f"{type(exc).__name__}: {exc}. Nothing was changed (all steps are one "
            f"transaction, rolled back); {saved}. Fix the cause (or run the Warden version "
            "that wrote the database) and start again"
        ) from exc
    if done:
        log.info(
            "database migrated (%s)%s", describe_moves(done),
            f"; the backup taken before is {backup.path}" if backup is not None else "",
        )  # fmt: skip
    if chain_id is not None and factory is not None:
        await record_identity(db, Identity(chain_id, factory))
    return Upgrade(done, backup)


async def read_identity(db: Database) -> Identity | None:
    if not await db.has_table("chain_identity"):
        return None
    row = await db.fetchone("SELECT chain_id, factory FROM chain_identity WHERE id = 1")
    return None if row is None else Identity(int(row[0]), str(row[1]))


def mismatch(stored: Identity, served: Identity) -> str | None:
    """Why a database of `stored` cannot serve `served` (None: they agree)."""
    if stored.chain_id == served.chain_id and stored.factory.lower() == served.factory.lower():
        return None
    return f"it holds sessions of {stored}, not of {served}"


async def check_identity(db: Database, served: Identity) -> None:
    stored = await read_identity(db)
    why = mismatch(stored, served) if stored is not None else None
    if why is not None:
        raise WrongDatabase(
            f"the database {db.display} belongs to another deployment: {why}. Point "
            "`database:` at this deployment's database (or a new file), or fix chain.chain_id "
            "and chain.factory"
        )


async def record_identity(db: Database, served: Identity) -> None:
    """Write the identity on the first start; refuse a database of another one."""
    await check_identity(db, served)
    await db.execute(
        "INSERT INTO chain_identity (id, chain_id, factory, recorded_ms) VALUES (1, ?, ?, ?) "
        "ON CONFLICT (id) DO NOTHING",
        (served.chain_id, served.factory, time.time_ns() // 1_000_000),
    )


def file_identity(path: Path) -> Identity | None:
    """The chain identity a SQLite file records (None: none recorded yet)."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
    try:
        row = conn.execute("SELECT chain_id, factory FROM chain_identity WHERE id = 1").fetchone()
    except sqlite3.OperationalError:
        return None
    finally:
        conn.close()
    return None if row is None else Identity(int(row[0]), str(row[1]))


def restorable(file: Path, live: Path, served: Identity | None) -> FileCheck:
    """What a restore checks before it touches anything: `file` is a sound backup
    (`database.check_sqlite`), of no schema newer than this Warden's (an older one is
    migrated by the next start), and of the chain and factory `served` (the config's) or,
    without one, of the database it replaces. `NotABackup` / `NotRestorable` otherwise."""
    check = check_sqlite(file)
    strange = sorted(set(check.versions) - set(known_versions()))
    if strange:
        raise NotRestorable(
            f"{file} holds schema components this Warden does not know "
            f"({', '.join(strange)}): it was written by a newer Warden — restore it with "
            "that version"
        )
    try:
        pending(check.versions, plan("postgresql"))
    except SchemaTooNew as exc:
        raise NotRestorable(f"{file}: {exc} — restore it with the Warden that wrote it") from None
    theirs = file_identity(file)
    ours = served
    if ours is None and live.is_file():
        with contextlib.suppress(sqlite3.Error):
            ours = file_identity(live)
    why = mismatch(theirs, ours) if theirs is not None and ours is not None else None
    if why is not None:
        raise NotRestorable(
            f"{file} is not a backup of this deployment: {why} — restore a backup of this "
            "chain and factory, or point --db/--config elsewhere"
        )
    return check
