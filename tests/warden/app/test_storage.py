"""The database's storage failing under the real `warden run` process: its file system
fills up while it indexes (a small tmpfs), or it is read-only (a read-only bind mount).
Either way: exit 3, one ERROR line naming the cause and the file, no traceback; once
fixed, a restart resumes and ends equal to a fresh index of the same chain.

Mounting needs root (the tests' usual user here); elsewhere these skip, saying so. The
unit tests of the classifier run everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests._chain import Chain
from tests._workload import Workload
from tests.conftest import Roles, Stack
from tests.indexer._support import config, index_to_head, rows
from warden.app.storage import STORAGE_EXIT, server_gone, storage_problem
from warden.cli.exit_codes import ExitCode
from warden.devnet import Anvil, free_port

ROOT = Path(__file__).resolve().parents[3]


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True, text=True, timeout=30)


@contextlib.contextmanager
def mounted(target: Path, *args: str) -> Iterator[Path]:
    target.mkdir(parents=True, exist_ok=True)
    try:
        mount(*args, str(target))
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        pytest.skip(f"cannot mount here (needs root and mount rights): {detail}")
    try:
        yield target
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True, timeout=30)


def write_config(tmp: Path, db: Path, rpc: str, stack: Stack, roles: Roles, start: int,
                 port: int, name: str = "warden.yaml") -> Path:  # fmt: skip
    rules = tmp / "rules"
    if not rules.exists():
        shutil.copytree(ROOT / "config/rules", rules)
    path = tmp / name
    path.write_text(f"""
chain:
  rpc: ["{rpc}"]
  chain_id: 31337
  factory: "{stack.factory.address}"
  start_block: {start}
  confirmations: 0
  poll_interval: 0.1
  retry_initial: 0.05
database: {db}
rules:
  files: [{rules}]
  decimals: 18
executor:
  dry_run: true
  relayer: "{roles.operator}"
api:
  port: {port}
logging:
  json: true
""")
    return path


class Run:
    """`python -m warden run`, its JSON log lines on stderr kept in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        with log.open("ab") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "warden", "run", "--config", str(config)],
                stdout=subprocess.DEVNULL, stderr=err, cwd=ROOT,
            )  # fmt: skip

    def records(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=60)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def checkpoint(db: Path) -> int | None:
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as c:
            row = c.execute("SELECT number FROM checkpoint").fetchone()
    except sqlite3.Error:
        return None
    return None if row is None else int(row[0])


def fill(directory: Path) -> Path:
    """A file that takes every free byte of `directory`'s file system."""
    filler = directory / "filler"
    chunk = b"\0" * 65536
    with filler.open("wb", buffering=0) as f:
        while True:
            try:
                f.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
                if len(chunk) == 1:
                    break
                chunk = chunk[: len(chunk) // 2]
    return filler


def assert_storage_stop(run: Run, cause: str, db: Path) -> None:
    text = run.log.read_text(errors="replace")
    assert run.proc.returncode == STORAGE_EXIT == ExitCode.STORAGE, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    records = run.records()
    assert not [r for r in records if "exception" in r], "a traceback was logged"
    errors = [r["message"] for r in records if r["level"] == "error"]
    assert any(cause in m and str(db) in m for m in errors), errors


def test_disk_full_while_indexing_stops_with_exit_3_and_a_restart_resumes_without_loss(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    with mounted(tmp_path / "disk", "-t", "tmpfs", "-o", "size=4m", "tmpfs") as disk:
        db = disk / "warden.sqlite"
        start = fresh_chain.w3.eth.block_number
        config = write_config(tmp_path, db, anvil.url, stack, roles, start, free_port())
        log = tmp_path / "warden.log"
        work = Workload(fresh_chain, stack, roles, random.Random(41), big_amounts=True)
        run = Run(config, log)
        try:
            wait_for(lambda: checkpoint(db) is not None, "the first commit")
            filler = fill(disk)
            deadline = time.monotonic() + 300
            while run.proc.poll() is None and time.monotonic() < deadline:
                work.run(5)  # new sessions and events: the indexer must write them
            assert run.proc.poll() is not None, "still running on a full disk"
        finally:
            run.kill()
        assert_storage_stop(run, "disk full", db)
        stopped_at = checkpoint(db)

        filler.unlink()
        work.run(10)  # the chain moves on while the daemon is down
        head = fresh_chain.w3.eth.block_number
        again = Run(config, log)
        try:
            wait_for(lambda: checkpoint(db) == head, "the restart to catch up")
        finally:
            assert again.stop() == 0
        assert stopped_at is not None and stopped_at < head

        reference = tmp_path / "reference.sqlite"
        asyncio.run(index_to_head(anvil.url, reference, config_for(stack, start)))
        assert rows(db) == rows(reference)


def config_for(stack: Stack, start: int) -> Any:
    return config(stack.factory.address, start_block=start)


def test_read_only_database_is_refused_at_start_naming_the_line_and_runs_once_writable(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    """A database on a read-only mount is refused before anything starts: `run` checks
    what `config check` checks (exit 2, FILE:LINE, no traceback, the file untouched). A
    mount cannot be made read-only under a running daemon (the kernel refuses while the
    database is open for writing), so the runtime path of a write refused by the disk
    is the disk-full test above; every SQLite code it maps is in the table below."""
    data = tmp_path / "data"
    data.mkdir()
    db = data / "warden.sqlite"
    start = fresh_chain.w3.eth.block_number
    log = tmp_path / "warden.log"
    writable = write_config(tmp_path, db, anvil.url, stack, roles, start, free_port())
    first = Run(writable, log)
    try:
        wait_for(lambda: checkpoint(db) is not None, "the first commit")
    finally:
        assert first.stop() == 0
    before = db.read_bytes()
    with mounted(tmp_path / "ro", "--bind", str(data)) as view:
        mount("-o", "remount,ro,bind", str(view))
        ro_db = view / "warden.sqlite"
        with pytest.raises(OSError) as refused:  # the same file, and root cannot write it
            ro_db.open("r+b").close()
        assert refused.value.errno == errno.EROFS
        Workload(fresh_chain, stack, roles, random.Random(5)).run(5)
        ro_config = write_config(
            tmp_path, ro_db, anvil.url, stack, roles, start, free_port(), name="ro.yaml"
        )
        ro = Run(ro_config, log)
        try:
            ro.proc.wait(timeout=120)
        finally:
            ro.kill()
        text = log.read_text(errors="replace")
        assert ro.proc.returncode == ExitCode.CONFIG, text[-3000:]
        assert "Traceback" not in text, text[-3000:]
        line = next(n for n, t in enumerate(ro_config.read_text().splitlines(), 1)
                    if t.startswith("database:"))  # fmt: skip
        assert f"{ro_config}:{line}: database:" in text and "not writable" in text
    assert db.read_bytes() == before  # refused before anything was written
    head = fresh_chain.w3.eth.block_number
    again = Run(writable, log)
    try:
        wait_for(lambda: checkpoint(db) == head, f"the writable restart to catch up to {head}")
    finally:
        assert again.stop() == 0


def _sqlite_error(code: int, message: str) -> sqlite3.Error:
    exc = sqlite3.OperationalError(message)
    exc.sqlite_errorcode = code
    return exc


@pytest.mark.parametrize(
    ("exc", "cause"),
    [
        (_sqlite_error(13, "database or disk is full"), "disk full"),
        (_sqlite_error(8, "attempt to write a readonly database"), "read-only database"),
        (_sqlite_error(1032, "attempt to write a readonly database"), "read-only database"),
        (_sqlite_error(4874, "disk I/O error"), "disk I/O error"),
        (OSError(errno.ENOSPC, "No space left on device", "/x/warden.sqlite"), "disk full"),
        (OSError(errno.EROFS, "Read-only file system", "/x/warden.sqlite"), "read-only file"),
    ],
)
def test_storage_failures_are_named(exc: BaseException, cause: str, tmp_path: Path) -> None:
    problem = storage_problem(exc, tmp_path / "warden.sqlite")
    assert problem is not None and cause in problem and str(tmp_path) in problem


def test_a_failed_write_behind_a_failed_rollback_is_still_found(tmp_path: Path) -> None:
    alone = sqlite3.OperationalError("cannot rollback - no transaction is active")
    assert storage_problem(alone, tmp_path / "w.sqlite") is None
    try:
        try:
            raise _sqlite_error(13, "database or disk is full")
        except sqlite3.Error:
            raise sqlite3.OperationalError("cannot rollback - no transaction is active")  # noqa: B904
    except sqlite3.Error as exc:
        problem = storage_problem(exc, tmp_path / "w.sqlite")
        assert problem is not None and "disk full" in problem


@pytest.mark.parametrize(
    "exc",
    [
        _sqlite_error(1, "no such table: sessions"),
        _sqlite_error(19, "UNIQUE constraint failed"),
        OSError(errno.EACCES, "Permission denied"),  # binding a port: no file
        OSError(errno.EADDRINUSE, "Address in use"),
        ValueError("bug"),
    ],
)
def test_other_failures_are_not_storage_failures(exc: BaseException, tmp_path: Path) -> None:
    assert storage_problem(exc, tmp_path / "warden.sqlite") is None


@pytest.mark.parametrize(
    "exc",
    [
        asyncpg.InterfaceError("connection is closed"),
        asyncpg.InternalClientError(
            "cannot switch to state 12; another operation (2) is in progress"
        ),
        ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
        TimeoutError(),
    ],
)
def test_a_lost_postgresql_connection_is_a_storage_failure(exc: BaseException) -> None:
    """On PostgreSQL a connection the server or the network ended stops the daemon with
    exit 3 and a line saying so, not a traceback (on SQLite a socket error is no storage's)."""
    url = "postgresql://warden@db.internal:5432/warden"
    problem = storage_problem(exc, url)
    assert problem is not None and "connection to the server failed" in problem
    assert "check the server" in problem and url in problem
    assert storage_problem(exc, Path("/x/warden.sqlite")) is None


def _pg_error(sqlstate: str, message: str) -> asyncpg.PostgresError:
    exc = asyncpg.PostgresError(message)
    exc.sqlstate = sqlstate
    return exc


@pytest.mark.parametrize(
    ("exc", "gone"),
    [
        (
            asyncpg.InterfaceError(
                "cannot call Transaction.__aexit__(): the underlying connection is closed"
            ),
            True,
        ),
        (ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"), True),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"), True),
        (_pg_error("57P01", "terminating connection due to administrator command"), True),
        (_pg_error("57P03", "the database system is starting up"), True),
        (_pg_error("08006", "connection failure"), True),
        # what the server's return does not cure: the replica stops (exit 3) or it is a bug
        (_pg_error("53100", "could not extend file: No space left on device"), False),
        (_pg_error("25006", "cannot execute UPDATE in a read-only transaction"), False),
        (_pg_error("23505", "duplicate key value violates unique constraint"), False),
        (ValueError("bug"), False),
    ],
)
def test_a_server_gone_away_is_told_from_one_that_failed(exc: BaseException, gone: bool) -> None:
    """`server_gone` decides whether a leader rides a failure out as a standby (a restart,
    a failover, a reset) or stops: a full disk or a read-only server stays as it is."""
    assert (server_gone(exc) is not None) is gone
    try:  # behind the rollback that failed after it, as the stores raise it
        try:
            raise exc
        except Exception:
            raise asyncpg.InterfaceError("connection is closed")  # noqa: B904
    except asyncpg.InterfaceError as outer:
        assert server_gone(outer) is not None  # the outer error is itself a lost connection
