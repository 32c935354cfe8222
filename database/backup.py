"""Consistent copies of a SQLite database while a daemon writes it, and the checks a copy
must pass before it is trusted (as a backup just taken, or a file offered for a restore).

    check = copy_sqlite(Path("warden.sqlite"), Path("backups/w.sqlite"), progress=show)
    check = check_sqlite(Path("backups/w.sqlite"))      # NotABackup when it is not usable

The copy goes through SQLite's online backup API, page by page, inside one read
transaction on the source: every page comes from the same snapshot, so a writer
committing meanwhile neither tears the copy nor makes it start over (WAL mode lets the
writer go on). It is written under a hidden partial name in the target's directory,
fsynced, checked (`integrity_check`, schema versions readable) and only then renamed to
its final name: a copy that fails, or a process killed mid-way, never leaves a file
under the final name. What stays behind after a kill -9 is the partial file, which the
next copy into that directory removes.
"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from database.errors import NotABackup

SQLITE_HEADER = b"SQLite format 3\x00"
PAGES_PER_STEP = 1024  # 4 MiB at the default page size: one progress report each
Progress = Callable[[int, int], None]  # (bytes copied, bytes in all)
_PARTIAL = re.compile(r"^\.(?P<name>.+)\.partial-(?P<pid>\d+)$")


@dataclass(frozen=True)
class FileCheck:
    """What a SQLite file that passed the checks holds."""

    path: Path
    size: int
    versions: dict[str, int]  # component → schema version (schema_versions)
    tables: frozenset[str] = field(default_factory=frozenset)


def partial_name(target: Path) -> Path:
    """Where a copy to `target` is written until it is complete and checked."""
    return target.with_name(f".{target.name}.partial-{os.getpid()}")


def live_files(source: Path) -> list[Path]:
    """The files that make up a live SQLite database: never a copy's target."""
    return [Path(f"{source}{suffix}") for suffix in ("", "-wal", "-shm", "-journal", ".lock")]


def same_file(a: Path, b: Path) -> bool:
    """Whether `a` and `b` name one file (through symlinks and hard links as well)."""
    with contextlib.suppress(OSError):
        if os.path.samefile(a, b):
            return True
    return a.resolve() == b.resolve()


def copy_sqlite(source: Path, target: Path, *, progress: Progress | None = None) -> FileCheck:
    """Copy the SQLite database `source` to `target` consistently while it is in use;
    the checked copy. Raises ValueError when `target` is one of the live database's own
    files, NotABackup when the copy fails its checks, and the driver's or the system's
    error (disk full, read-only directory) as it is; nothing is left under `target` then."""
    for live in live_files(source):
        if same_file(target, live):
            raise ValueError(f"{target} is the live database's own file {live}")
    if not source.is_file():
        raise FileNotFoundError(2, "no such database file", str(source))
    remove_stale_partials(target.parent)
    partial = partial_name(target)
    partial.unlink(missing_ok=True)
    try:
        _copy(source, partial, progress)
        try:
            check = check_sqlite(partial)
        except NotABackup as exc:  # a faithful copy of what the source holds
            why = str(exc).replace(str(partial), "the copy")
            raise NotABackup(
                f"{source} is damaged: {why}; nothing was written under {target}. Restore "
                "a backup, or copy the file aside as it is"
            ) from None
        os.replace(partial, target)
        _fsync_directory(target.parent)
    except BaseException:
        for leftover in (partial, Path(f"{partial}-journal")):
            with contextlib.suppress(OSError):
                leftover.unlink()
        raise
    return FileCheck(target, check.size, check.versions, check.tables)


def _copy(source: Path, partial: Path, progress: Progress | None) -> None:
    uri = source.resolve().as_uri()
    try:  # mode=rw: never create a database where none was
        src = sqlite3.connect(f"{uri}?mode=rw", uri=True, timeout=30, isolation_level=None)
    except sqlite3.OperationalError:  # a database this user may only read
        src = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
    try:
        src.execute("PRAGMA busy_timeout=30000")
        # One read transaction for the whole copy: every step reads the same snapshot.
        src.execute("BEGIN")
        src.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        page_size = int(src.execute("PRAGMA page_size").fetchone()[0])
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds keys' work
        os.close(fd)
        dst = sqlite3.connect(partial, isolation_level=None)
        try:

            def report(_status: int, remaining: int, total: int) -> None:
                if progress is not None:
                    progress((total - remaining) * page_size, total * page_size)

            src.backup(dst, pages=PAGES_PER_STEP, progress=report, sleep=0.05)
            # A copy is one self-contained file: no -wal to carry along with it.
            dst.execute("PRAGMA journal_mode=DELETE")
        finally:
            dst.close()
        src.execute("COMMIT")
    finally:
        src.close()
    fd = os.open(partial, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def check_sqlite(path: Path) -> FileCheck:
    """The checks a backup must pass: a SQLite file, as long as its header says, whose
    `integrity_check` is ok and which records Warden's schema versions. NotABackup
    otherwise, saying what is wrong with it."""
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise NotABackup(f"{path} is a directory, not a backup file")
        with path.open("rb") as f:
            header = f.read(100)
    except FileNotFoundError:
        raise NotABackup(f"there is no file at {path}") from None
    except OSError as exc:
        raise NotABackup(f"cannot read {path}: {exc.strerror}") from None
    if not header.startswith(SQLITE_HEADER):
        shown = "it is empty" if not header else f"it begins {header[:16]!r}"
        raise NotABackup(f"{path} is not a SQLite database ({shown})")
    if len(header) < 100:
        raise NotABackup(f"{path} is truncated: {size} bytes, not even a SQLite header")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The header's page count is valid when its change counter matches (SQLite ≥ 3.7).
    if header[24:28] == header[92:96] and pages and size < pages * page_size:
        raise NotABackup(
            f"{path} is truncated: its header says {pages * page_size:,} bytes, the file has "
            f"{size:,} (an interrupted copy?)"
        )
    uri = path.resolve().as_uri() + "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True)
    except sqlite3.Error as exc:
        raise NotABackup(f"{path} cannot be opened: {exc}") from None
    try:
        problems = [str(r[0]) for r in conn.execute("PRAGMA integrity_check(5)")]
        if problems != ["ok"]:
            raise NotABackup(f"{path} is corrupt: {'; '.join(problems)[:400]}")
        tables = frozenset(
            str(r[0]) for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")
        )
        if "schema_versions" not in tables:
            raise NotABackup(f"{path} is a SQLite file but not a Warden database (no schema "
                             "versions)")  # fmt: skip
        rows = conn.execute("SELECT component, version FROM schema_versions").fetchall()
        versions = {str(c): int(v) for c, v in rows}
    except sqlite3.DatabaseError as exc:
        raise NotABackup(f"{path} is damaged: {exc}") from None
    finally:
        conn.close()
    return FileCheck(path, size, versions, tables)


def remove_stale_partials(directory: Path) -> list[Path]:
    """Remove the partial copies in `directory` whose writer is gone (killed mid-copy)."""
    removed: list[Path] = []
    try:
        entries = list(directory.iterdir())
    except OSError:
        return removed
    for entry in entries:
        match = _PARTIAL.match(entry.name.removesuffix("-journal"))
        if match is None or _alive(int(match["pid"])):
            continue
        with contextlib.suppress(OSError):
            entry.unlink()
            removed.append(entry)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # ours, from an earlier attempt in this process: not in use
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fsync_directory(directory: Path) -> None:
    with contextlib.suppress(OSError):  # some file systems refuse a directory's fsync
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
