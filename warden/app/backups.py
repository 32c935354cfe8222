"""Backups of the daemon's database: taken on demand (`warden db backup`), before every
migration, and of the database a restore replaces; restores (`warden db restore`).

SQLite: a consistent online copy through `database.copy_sqlite` (the daemon may be
running: one read snapshot, the writer goes on), written under a partial name and renamed
only once it passed `integrity_check` and its schema versions read back. PostgreSQL:
`pg_dump --format=custom` when it is on PATH (the password, if the URL has one, goes to it
in PGPASSWORD, never on its command line), otherwise the exact command to run.

Names carry the database's name, why the copy was taken, the time (UTC) and the schema
versions it holds: ``warden.sqlite.pre-migration-20261207T195100Z-executor3-indexer1.sqlite``.
Automatic backups (`pre-migration`, `pre-restore`) are rotated: the newest `backups.keep`
of each kind stay. Backups taken on demand are never removed by Warden.

Errors, by what the caller should do:

    BackupError            nothing was written under the final name; the message says why
    ├── BackupRefused        the request itself is wrong (a target that is the live
    │                        database, a restore file of another chain or a newer
    │                        schema): fix the arguments
    ├── BackupWriteFailed    the disk under the backup is full or read-only: free space
    │                        there, or write it elsewhere
    └── ToolMissing          PostgreSQL without pg_dump / pg_restore here: run the
                             printed command where they are
    database.NotABackup    the file is not a usable backup (not SQLite, truncated, corrupt)
    database.DatabaseBusy  a daemon holds the database: stop it first (restore)
    OSError, sqlite3.Error the disk (full, read-only): `warden.app.storage` words it
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from database import FileCheck, NotABackup, check_sqlite, copy_sqlite, redact_database_url
from database.backup import Progress, same_file
from database.sqlite import hold_file
from warden.app.storage import file_problem

log = logging.getLogger("warden.backups")

AUTOMATIC = ("pre-migration", "pre-restore")
_SOURCE_DAMAGED = (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB: the copied database, not the disk


class BackupError(RuntimeError):
    """A backup or a restore that did not happen; the message says why and the fix."""


class BackupRefused(BackupError):
    """The request is wrong as given: fix the arguments."""


class BackupWriteFailed(BackupError):
    """The disk under the backup failed (full, read-only): free space or write elsewhere."""


class ToolMissing(BackupError):
    """pg_dump / pg_restore is not on PATH: the message holds the command to run."""


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int
    versions: dict[str, int]


def stamp(now: datetime.datetime | None = None) -> str:
    moment = now or datetime.datetime.now(datetime.UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f"{moment.microsecond // 1000:03d}Z"


def backup_name(database: str, kind: str, versions: Mapping[str, int], suffix: str) -> str:
    held = "-".join(f"{c}{v}" for c, v in sorted(versions.items())) or "empty"
    return f"{database}.{kind}-{stamp()}-{held}{suffix}"


def automatic_directory(where: str | Path, directory: Path | None) -> Path:
    """Where automatic backups go: `backups.directory`, or next to the SQLite file (the
    current directory for a PostgreSQL database without `backups.directory`)."""
    if directory is not None:
        return directory
    return where.parent if isinstance(where, Path) else Path.cwd()


def _database_name(where: str | Path) -> str:
    if isinstance(where, Path):
        return where.name
    name = urlsplit(str(where)).path.strip("/") or "warden"
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def rotate(directory: Path, database: str, kind: str, keep: int) -> list[Path]:
    """Remove all but the newest `keep` automatic backups of `kind` of `database`."""
    prefix = f"{database}.{kind}-"
    found = sorted(p for p in directory.glob(f"{glob_escape(prefix)}*") if p.is_file())
    removed = found[: max(0, len(found) - keep)]  # names sort by their UTC time
    for old in removed:
        with contextlib.suppress(OSError):
            old.unlink()
            log.info("removed the old backup %s (backups.keep is %d)", old, keep)
    return removed


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


# -- SQLite ---------------------------------------------------------------------------


async def backup_sqlite(source: Path, target: Path, *, progress: Progress | None = None) -> Backup:
    """A checked consistent copy of `source` at `target` (see `database.copy_sqlite`)."""
    try:
        check = await asyncio.to_thread(copy_sqlite, source, target, progress=progress)
    except ValueError as exc:
        raise BackupRefused(f"refusing to write the backup over {exc}: name another file") from None
    except (OSError, sqlite3.Error) as exc:
        code = getattr(exc, "sqlite_errorcode", 0) or 0
        problem = None if code & 0xFF in _SOURCE_DAMAGED else file_problem(exc, target)
        if problem is None:
            raise
        raise BackupWriteFailed(
            f"the backup {target} could not be written: {problem}; nothing was left under that name"
        ) from exc
    return Backup(check.path, check.size, check.versions)


def default_target(where: str | Path, versions: Mapping[str, int], to: Path | None) -> Path:
    """`--to` as given, or a name of the `backup` kind in the directory `--to` names, or
    next to the database."""
    suffix = ".sqlite" if isinstance(where, Path) else ".dump"
    name = backup_name(_database_name(where), "backup", versions, suffix)
    if to is None:
        return automatic_directory(where, None) / name
    return to / name if to.is_dir() else to


def check_target(target: Path, where: str | Path, *, force: bool) -> None:
    """Refuse a target that cannot or must not be written, before any work."""
    if isinstance(where, Path):
        for suffix in ("", "-wal", "-shm", "-journal", ".lock"):
            if same_file(target, Path(f"{where}{suffix}")):
                raise BackupRefused(
                    f"--to {target} is the live database's own file {where}{suffix}: a backup "
                    "must go to another file"
                )
    if target.is_dir():
        raise BackupRefused(f"--to {target} is a directory")
    if target.exists() and not force:
        raise BackupRefused(
            f"{target} exists: name a new file, or pass --force to replace it once the new "
            "backup is complete"
        )
    parent = target.parent
    if not parent.is_dir():
        raise BackupRefused(f"the directory {parent} does not exist: create it first")
    with contextlib.suppress(OSError):
        if os.statvfs(parent).f_flag & os.ST_RDONLY:
            raise BackupRefused(
                f"the directory {parent} is on a read-only file system: choose another --to, "
                "or remount it read-write"
            )
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BackupRefused(
            f"the directory {parent} is not writable by this user: choose another --to or "
            "fix its permissions"
        )


async def before_migration(
    source: str | Path,
    where: str | Path,
    current: Mapping[str, int],
    *,
    keep: int,
    directory: Path | None,
) -> Backup | None:
    """The automatic backup a start takes before it migrates a database holding data
    (`source`: the SQLite path or the PostgreSQL URL with its password; `where`: the same,
    safe to show); None on PostgreSQL without pg_dump (a WARNING says what to run; the migration is
    still one transaction)."""
    folder = automatic_directory(where, directory)
    if isinstance(where, Path):
        target = folder / backup_name(where.name, "pre-migration", current, ".sqlite")
        backup = await backup_sqlite(
            where, target, progress=_LogProgress("backup before migrating")
        )
    else:
        target = folder / backup_name(_database_name(where), "pre-migration", current, ".dump")
        try:
            backup = await dump_postgres(str(source), target)
        except ToolMissing as exc:
            log.warning("no backup before migrating: %s", exc)
            return None
    log.info("backup before migrating: %s (%s bytes)", backup.path, f"{backup.size:,}")
    rotate(folder, _database_name(where), "pre-migration", keep)
    return backup


class _LogProgress:
    """Progress of a long copy as INFO lines, at most one every 5 s."""

    def __init__(self, what: str, every: float = 5.0) -> None:
        self.what, self.every = what, every
        self.last = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self.last >= self.every and total:
            self.last = now
            log.info("%s: %d%% (%s of %s MiB)", self.what, 100 * done // total,
                     f"{done / 2**20:,.0f}", f"{total / 2**20:,.0f}")  # fmt: skip


# -- PostgreSQL -----------------------------------------------------------------------


def _split_password(url: str) -> tuple[str, str | None]:
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, "")), parts.password


def pg_dump_command(url: str, target: Path) -> list[str]:
    """pg_dump's arguments (the URL without its password: that goes in PGPASSWORD)."""
    bare, _ = _split_password(url)
    return ["pg_dump", "--format=custom", "--no-owner", f"--file={target}", f"--dbname={bare}"]


def pg_restore_command(url: str, file: Path) -> list[str]:
    bare, _ = _split_password(url)
    return ["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
            f"--dbname={bare}", str(file)]  # fmt: skip


def shown(command: list[str]) -> str:
    return shlex.join(command)


async def dump_postgres(url: str, target: Path) -> Backup:
    """pg_dump into a partial name, checked with `pg_restore --list`, then renamed."""
    command = pg_dump_command(url, target)
    tool = shutil.which("pg_dump")
    if tool is None:
        raise ToolMissing(
            f"pg_dump is not on PATH; run it where PostgreSQL's client tools are installed "
            f"(the password from PGPASSWORD or ~/.pgpass): {shown(command)}"
        )
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    bare, password = _split_password(url)
    env = dict(os.environ)
    if password is not None:
        env["PGPASSWORD"] = password
    command = [tool, *pg_dump_command(bare, partial)[1:]]
    try:
        await _run(command, env, "pg_dump", url)
        lister = shutil.which("pg_restore", path=str(Path(tool).parent)) or shutil.which(
            "pg_restore"
        )
        if lister is not None:
            await _run([lister, "--list", str(partial)], env, "pg_restore --list", url)
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return Backup(target, target.stat().st_size, {})


async def _run(command: list[str], env: dict[str, str], what: str, url: str) -> None:
    proc = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    _, err = await proc.communicate()
    if proc.returncode != 0:
        text = err.decode(errors="replace").strip().replace(url, redact_database_url(url))
        raise BackupError(f"{what} failed (exit {proc.returncode}): {text[:600]}")


# -- restore (SQLite) -----------------------------------------------------------------


@dataclass(frozen=True)
class Restored:
    file: FileCheck  # what was restored
    replaced: Backup | None  # the database it replaced, kept as a backup


async def restore_sqlite(
    file: Path,
    live: Path,
    *,
    keep: int,
    directory: Path | None,
    progress: Progress | None = None,
) -> Restored:
    """Put the checked backup `file` in place of the database `live`, holding the lock a
    daemon holds (`DatabaseBusy` while one runs); the database it replaces is first kept
    as a `pre-restore` backup. The caller has checked `file` (schema, chain identity)."""
    if same_file(file, live):
        raise BackupRefused(f"{file} is the live database itself: name a backup file")
    check = await asyncio.to_thread(check_sqlite, file)
    folder = automatic_directory(live, directory)
    with hold_file(live, "warden db restore"):
        replaced: Backup | None = None
        damaged = False
        if live.exists() and live.stat().st_size > 0:
            current = await asyncio.to_thread(check_sqlite_versions, live)
            target = folder / backup_name(live.name, "pre-restore", current, ".sqlite")
            try:
                replaced = await backup_sqlite(live, target, progress=progress)
            except (NotABackup, sqlite3.DatabaseError) as exc:
                # The database being replaced is damaged (often why it is restored): keep
                # its files as they are, byte for byte, rather than refuse the restore.
                damaged = True
                log.warning("the database being replaced is damaged (%s): kept as it is", exc)
                raw = target.with_name(target.name.removesuffix(".sqlite") + "-damaged.sqlite")
                replaced = await asyncio.to_thread(_raw_copy, live, raw)
            rotate(folder, live.name, "pre-restore", keep)
        staged = live.with_name(f"{live.name}.restoring")
        staged.unlink(missing_ok=True)
        await asyncio.to_thread(copy_sqlite, file, staged, progress=progress)
        await asyncio.to_thread(_swap, staged, live, damaged)
    return Restored(check, replaced)


def _raw_copy(live: Path, target: Path) -> Backup:
    """The damaged database's files copied as they are (its -wal beside the copy)."""
    for suffix in ("", "-wal"):
        source = Path(f"{live}{suffix}")
        if source.exists():
            partial = target.with_name(f".{target.name}{suffix}.partial-{os.getpid()}")
            shutil.copyfile(source, partial)
            os.chmod(partial, 0o600)
            os.replace(partial, Path(f"{target}{suffix}"))
    return Backup(target, target.stat().st_size, {})


def check_sqlite_versions(path: Path) -> dict[str, int]:
    """The live database's versions (empty when it has none yet), for a backup's name."""
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
    try:
        rows = conn.execute("SELECT component, version FROM schema_versions").fetchall()
    except sqlite3.DatabaseError:  # no versions yet, or not readable (damaged)
        return {}
    finally:
        conn.close()
    return {str(c): int(v) for c, v in rows}


def _swap(staged: Path, live: Path, damaged: bool = False) -> None:
    """Replace `live` by `staged`. The old database's WAL is folded into it first and its
    journal mode set to DELETE (which removes the -wal): a -wal left beside the new file
    would be read as part of it. A crash at any point leaves either the old database
    whole or the new one in place."""
    if live.exists() and not damaged:  # a damaged one's -wal was kept with its copy
        conn = sqlite3.connect(live, timeout=30, isolation_level=None)
        try:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            conn.execute("PRAGMA journal_mode=DELETE")
        finally:
            conn.close()
    mode = live.stat().st_mode & 0o777 if live.exists() else 0o600
    os.chmod(staged, mode)
    os.replace(staged, live)
    for suffix in ("-wal", "-shm"):
        Path(f"{live}{suffix}").unlink(missing_ok=True)
    fd = os.open(live.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
