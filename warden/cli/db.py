"""`warden db backup | restore | export | info`: the daemon's database as an operator
handles it (docs/operations.md). The work is in `warden.app` (backups, schema, export,
database_info); this module reads the arguments, words every failure with its fix, and
maps it to an exit code: 2 for a request to fix (a bad flag, a file that is not a usable
backup, a backup of another chain or a newer schema, a target that must not be written),
1 when the work could not be done now (a daemon holds the database, pg_dump is missing),
3 when the disk failed (full, read-only), never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import orjson
from eth_utils.address import is_address, to_checksum_address

from database import (
    DatabaseBusy,
    DatabaseError,
    NotABackup,
    SchemaTooNew,
    is_postgres_url,
    open_database,
    redact_database_url,
)
from database.backup import live_files, same_file
from warden.app.backups import (
    BackupError,
    BackupRefused,
    BackupWriteFailed,
    ToolMissing,
    backup_sqlite,
    check_target,
    default_target,
    dump_postgres,
    pg_restore_command,
    restore_sqlite,
    shown,
)
from warden.app.database_info import describe
from warden.app.export import FORMATS, KINDS, Filters, RateReporter, export, filter_problems
from warden.app.schema import Identity, restorable
from warden.app.settings import ConfigError, load_config, target, where
from warden.cli.exit_codes import ExitCode

_USED = [("database",), ("backups",), ("chain", "chain_id"), ("chain", "factory")]
_EPILOG = "Name the database with --config (the daemon's config file) or --db."


def add_db_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    db = sub.add_parser(
        "db",
        help="back up, restore, export or describe the daemon's database",
        description="Operate on the daemon's database: consistent online backups, restores "
        "that keep the replaced database, streamed exports for analysis, and a summary.",
    )
    actions = db.add_subparsers(dest="db_command", metavar="ACTION")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", help="the daemon's config file: its database: and backups:")
        p.add_argument(
            "--db",
            help="SQLite file or postgresql://user@host/db URL (instead of --config; a "
            "password is best kept in PGPASSWORD or ~/.pgpass)",
        )
        p.add_argument("--quiet", action="store_true", help="no progress lines")

    backup = actions.add_parser(
        "backup",
        help="a consistent copy, while the daemon runs",
        description="Copy the database consistently while the daemon runs (SQLite's online "
        "backup API: one snapshot). The copy is written under a hidden partial name, checked "
        "(integrity_check, schema versions) and only then renamed. PostgreSQL: pg_dump "
        "--format=custom when it is on PATH, otherwise the exact command is printed.",
        epilog=_EPILOG,
    )
    common(backup)
    backup.add_argument(
        "--to",
        type=Path,
        help="file or directory (default: next to the database, named with "
        "the time and schema versions)",
    )
    backup.add_argument("--force", action="store_true", help="replace an existing --to file")

    restore = actions.add_parser(
        "restore",
        help="put a backup in place of the database (daemon stopped)",
        description="Replace the SQLite database by a backup: refused while a daemon holds "
        "the database; the file's integrity, schema versions and chain are checked first; "
        "the replaced database is kept as a pre-restore backup. The next start re-syncs from "
        "the backup's checkpoint and reconciles the outbox with the chain. PostgreSQL: the "
        "pg_restore command to run is printed.",
        epilog=_EPILOG,
    )
    restore.add_argument("file", type=Path, help="the backup to restore")
    common(restore)

    out = actions.add_parser(
        "export",
        help="sessions, events or intents as NDJSON or CSV, streamed",
        description="Export one table for analysis, streamed (constant memory) from one "
        "snapshot. Amounts are exact decimal strings. Columns: docs/operations.md.",
        epilog=_EPILOG,
    )
    out.add_argument(
        "what",
        choices=KINDS,
        help="sessions, events, or intents (with their jobs and transactions)",
    )
    common(out)
    out.add_argument("--format", choices=FORMATS, default="ndjson", help="default ndjson")
    out.add_argument("--out", default="-", help="file to write (default - : standard output)")
    out.add_argument("--force", action="store_true", help="replace an existing --out file")
    out.add_argument("--owner", help="only sessions of this owner (and their events, intents)")
    out.add_argument("--status", help="a session status (sessions, events) or an intent state")
    out.add_argument("--from-block", type=int, help="first block (inclusive)")
    out.add_argument("--to-block", type=int, help="last block (inclusive)")

    info = actions.add_parser(
        "info",
        help="schema versions, row counts, size, checkpoint, chain",
        description="Describe the database (read-only; works while the daemon runs).",
        epilog=_EPILOG,
    )
    common(info)
    info.add_argument("--json", action="store_true", help="print JSON")


class Refused(Exception):
    """A request this command refuses: the message names the fix; `code` is the exit."""

    def __init__(self, message: str, code: ExitCode = ExitCode.CONFIG) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Target:
    source: str | Path  # what open_database takes (the URL with its password)
    shown: str | Path  # safe to print; a Path for a SQLite file
    keep: int = 3
    directory: Path | None = None
    identity: Identity | None = None  # the chain the config serves, when it names one


def run_db_command(args: argparse.Namespace) -> int:
    name = f"warden db {args.db_command}" if args.db_command else "warden db"
    if args.db_command is None:
        print(
            f"{name}: name an action: backup, restore, export or info (see --help)", file=sys.stderr
        )
        return ExitCode.CONFIG
    try:
        goal = _target(args)
        action = {"backup": _backup, "restore": _restore, "export": _export, "info": _info}
        return asyncio.run(action[args.db_command](args, goal))
    except ConfigError as exc:
        print(f"{name}: {args.config} has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return ExitCode.CONFIG
    except Refused as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return exc.code
    except (NotABackup, SchemaTooNew, BackupRefused) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return ExitCode.CONFIG
    except DatabaseBusy as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return ExitCode.RUNTIME_FAILURE
    except BackupWriteFailed as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return ExitCode.STORAGE
    except (ToolMissing, BackupError, DatabaseError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return ExitCode.RUNTIME_FAILURE
    except BrokenPipeError:  # `warden db export … | head`: the reader had enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the exit's flush does not fail again
        return ExitCode.OK
    except (OSError, sqlite3.Error) as exc:
        print(f"{name}: {_storage(exc)}", file=sys.stderr)
        return ExitCode.STORAGE
    except KeyboardInterrupt:
        print(f"{name}: interrupted; nothing was written under the final name", file=sys.stderr)
        return ExitCode.FORCED


def _storage(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        where_ = f" {exc.filename}" if exc.filename else ""
        hints = {
            28: "free space there",
            30: "remount it read-write or write elsewhere",
            13: "fix the permissions or write elsewhere",
            122: "raise the quota",
        }
        hint = hints.get(exc.errno or 0, "check the disk and the path")
        return (
            f"cannot write{where_}: {exc.strerror or exc} — {hint}; nothing was left under "
            "the final name"
        )
    return f"the database failed: {type(exc).__name__}: {exc} — check the disk and the file"


def _target(args: argparse.Namespace) -> Target:
    if (args.config is None) == (args.db is None):
        raise Refused(
            "say which database: --config FILE (the daemon's config) or --db PATH|URL, one of them"
        )
    if args.db is not None:
        text = str(args.db)
        if "://" in text and not is_postgres_url(text):
            raise Refused(
                f"--db {text.split('://')[0]}://… is not a database: a SQLite file "
                "path or a postgresql://user@host/db URL"
            )
        if is_postgres_url(text):
            return Target(text, redact_database_url(text))
        return Target(Path(text), Path(text))
    # Only what `warden db` uses: a backup needs no relayer key, nor its password.
    cfg = load_config(args.config, os.environ, only=_USED)
    identity = None
    if not cfg.is_devnet and cfg.chain.chain_id is not None and cfg.chain.factory is not None:
        identity = Identity(cfg.chain.chain_id, cfg.chain.factory)
    return Target(
        target(cfg.database), where(cfg.database), cfg.backups.keep, cfg.backups.directory, identity
    )


def _progress(args: argparse.Namespace, what: str) -> Any:
    if args.quiet:
        return None
    last = [0.0]

    def show(done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 1.0 or done >= total:
            last[0] = now
            pct = 100 * done // total if total else 100
            print(
                f"{what}: {pct}% ({done / 2**20:,.1f} of {total / 2**20:,.1f} MiB)",
                file=sys.stderr,
                flush=True,
            )

    return show


def _sqlite_file(goal: Target, what: str) -> Path:
    assert isinstance(goal.shown, Path)
    path = goal.shown
    if not path.exists():
        raise Refused(f"there is no database at {path}: check --db / database:")
    if not path.is_file():
        raise Refused(f"{path} is not a file: --db names the SQLite database file")
    return path


# -- backup -----------------------------------------------------------------------------


async def _backup(args: argparse.Namespace, goal: Target) -> int:
    if not isinstance(goal.shown, Path):
        to = default_target(goal.shown, {}, args.to)
        check_target(to, goal.shown, force=args.force)
        backup = await dump_postgres(str(goal.source), to)
        print(
            f"backup written: {backup.path} ({backup.size:,} bytes, pg_dump custom format; "
            f"restore with: {shown(pg_restore_command(str(goal.shown), backup.path))})"
        )
        return ExitCode.OK
    live = _sqlite_file(goal, "backup")
    from warden.app.backups import check_sqlite_versions

    versions = await asyncio.to_thread(check_sqlite_versions, live)
    to = default_target(live, versions, args.to)
    check_target(to, live, force=args.force)
    backup = await backup_sqlite(live, to, progress=_progress(args, "backup"))
    held = ", ".join(f"{c} {v}" for c, v in sorted(backup.versions.items()))
    print(f"backup written: {backup.path} ({backup.size:,} bytes; integrity ok; schema {held})")
    return ExitCode.OK


# -- restore ----------------------------------------------------------------------------


async def _restore(args: argparse.Namespace, goal: Target) -> int:
    file: Path = args.file
    if not isinstance(goal.shown, Path):
        command = shown(pg_restore_command(str(goal.shown), file))
        raise Refused(
            "a PostgreSQL database is restored with PostgreSQL's tools: stop every replica, "
            f"then run (the password from PGPASSWORD or ~/.pgpass): {command}",
            ExitCode.RUNTIME_FAILURE,
        )
    live = goal.shown
    check = await asyncio.to_thread(restorable, file, live, goal.identity)
    restored = await restore_sqlite(
        file, live, keep=goal.keep, directory=goal.directory, progress=_progress(args, "restore")
    )
    held = ", ".join(f"{c} {v}" for c, v in sorted(check.versions.items()))
    print(f"restored {file} into {live} (schema {held})")
    if restored.replaced is not None:
        print(f"the database it replaced is kept as {restored.replaced.path}")
    print(
        "the next `warden run` re-syncs from the backup's checkpoint and reconciles the "
        'outbox with the chain (docs/operations.md, "After a restore")'
    )
    return ExitCode.OK


# -- export -----------------------------------------------------------------------------


@contextlib.contextmanager
def _output(path: str, force: bool) -> Iterator[IO[bytes]]:
    """Standard output, a device or pipe as it is, or a regular file written under a
    partial name and renamed when the export is complete."""
    if path == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    out = Path(path)
    try:
        mode = out.stat().st_mode
    except OSError:
        mode = 0
    if mode and not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # /dev/stdout, a FIFO
        with out.open("wb") as f:
            yield f
        return
    if out.is_dir():
        raise Refused(f"--out {out} is a directory: name a file in it")
    if out.exists() and not force:
        raise Refused(f"--out {out} exists: name a new file, or pass --force to replace it")
    if not out.parent.is_dir():
        raise Refused(f"--out {out}: the directory {out.parent} does not exist — create it")
    with contextlib.suppress(OSError):
        read_only = bool(os.statvfs(out.parent).f_flag & os.ST_RDONLY)
        if read_only:
            raise Refused(
                f"--out {out}: the directory {out.parent} is on a read-only file system — "
                "choose another --out"
            )
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise Refused(
            f"--out {out}: the directory {out.parent} is not writable by this user "
            "— choose another --out or fix its permissions"
        )
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        with partial.open("wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


async def _export(args: argparse.Namespace, goal: Target) -> int:
    owner = args.owner
    if owner is not None:
        if not is_address(owner):
            raise Refused(f"--owner {owner!r} is not an address (0x + 40 hex digits)")
        owner = to_checksum_address(owner)
    filters = Filters(owner, args.status, args.from_block, args.to_block)
    problems = filter_problems(args.what, filters)
    if problems:
        raise Refused("; ".join(problems))
    if isinstance(goal.shown, Path):
        _sqlite_file(goal, "export")
        if args.out != "-" and any(same_file(Path(args.out), f) for f in live_files(goal.shown)):
            raise Refused(f"--out {args.out} is the database's own file: name another file")
    db = await open_database(goal.source, read_only=True)
    try:
        for table in ("sessions", "events") if args.what != "intents" else ("intents", "jobs"):
            if not await db.has_table(table):
                raise Refused(f"{goal.shown} has no {table} table: is it a Warden database?")
        report = (
            None
            if args.quiet
            else RateReporter(lambda line: print(line, file=sys.stderr, flush=True), args.what)
        )
        started = time.monotonic()
        with _output(args.out, args.force) as out:
            n = await export(db, args.what, args.format, out, filters, progress=report)
    finally:
        await db.close()
    if not args.quiet:
        took = time.monotonic() - started
        print(
            f"export: {n:,} {args.what} in {took:.1f} s"
            + ("" if args.out == "-" else f" to {args.out}"),
            file=sys.stderr,
        )
    return ExitCode.OK


# -- info -------------------------------------------------------------------------------


async def _info(args: argparse.Namespace, goal: Target) -> int:
    if isinstance(goal.shown, Path):
        _sqlite_file(goal, "info")
    db = await open_database(goal.source, read_only=True)
    try:
        info = await describe(db, goal.shown)
    finally:
        await db.close()
    if args.json:
        print(orjson.dumps(info.as_dict(), option=orjson.OPT_INDENT_2).decode())
    else:
        print("\n".join(info.lines()))
    return ExitCode.OK
