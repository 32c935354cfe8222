"""The PostgreSQL the tests run against (tests/_postgres.py, issue 16): a real server that
runs unprivileged, keeps uint256 amounts and positions exact through asyncpg, gives each
test a database of its own, leaves nothing behind, and fails fast and clearly."""

from __future__ import annotations

import asyncio
import decimal
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from chain.abi import block_of, position
from tests._postgres import (
    DIR_PREFIX,
    OWNER_FILE,
    ExternalPostgres,
    Postgres,
    PostgresError,
    PostgresServer,
    find_install,
    link_install,
    run_async,
    sweep_stale_dirs,
    unique_database_name,
)
from warden.devnet import free_port

# all of them need PostgreSQL; some start servers of their own, through no fixture the
# conftest could mark them by
pytestmark = pytest.mark.postgres

UINT256_MAX = 2**256 - 1
BIGINT_MAX = 2**63 - 1


@pytest.fixture(scope="module")
def local_server(postgres: Postgres) -> Iterator[PostgresServer]:
    """The session's throwaway server; with WARDEN_TEST_POSTGRES set, one of this
    module's own, so these tests run (never skip) against both setups."""
    if isinstance(postgres, PostgresServer):
        yield postgres
    else:
        with PostgresServer() as server:
            yield server


def _uids(pid: int) -> list[int]:
    """Real, effective, saved and file-system uid of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return [int(u) for u in line.split()[1:]]
    raise AssertionError(f"no Uid line for {pid}")


def _processes_in(directory: Path) -> list[int]:
    """The processes whose working directory is `directory` (every postgres process
    chdirs into its data directory), so a backend left behind would show up here."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if Path(os.readlink(proc / "cwd")) == directory:
                    found.append(int(proc.name))
            except OSError:  # exited meanwhile, or not ours to read
                continue
    return found


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _own_dirs() -> set[Path]:
    """This process's server directories in the temp dir (not a concurrent run's)."""
    found = set()
    for path in Path(tempfile.gettempdir()).glob(f"{DIR_PREFIX}*"):
        try:
            if int((path / OWNER_FILE).read_text()) == os.getpid():
                found.add(path)
        except (OSError, ValueError):
            continue
    return found


def test_server_runs_as_an_unprivileged_user(local_server: PostgresServer) -> None:
    pid = local_server.pid
    assert pid is not None
    uids = _uids(pid)
    if os.geteuid() == 0:
        # CI runs as root; PostgreSQL would refuse to, so it runs as `nobody`
        assert 0 not in uids, f"postgres runs with uids {uids}"
        assert local_server.data_dir.stat().st_uid == uids[0]
        assert local_server.data_dir.stat().st_mode & 0o077 == 0  # only that user reads it
    else:
        assert uids == [os.geteuid()] * 4


async def test_numeric_78_keeps_uint256_exact(pg_dsn: str) -> None:
    values = [0, 1, 2**255 - 1, 2**255, 2**255 + 1, UINT256_MAX]
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE amounts (id int PRIMARY KEY, v NUMERIC(78, 0) NOT NULL)")
        # sent both as Python int and as Decimal: both must arrive digit for digit
        rows = [(i, v if i % 2 else Decimal(v)) for i, v in enumerate(values)]
        await conn.executemany("INSERT INTO amounts VALUES ($1, $2)", rows)
        # under the default 28-digit decimal context too: decoding must not round
        with decimal.localcontext(decimal.Context(prec=28)):
            got = await conn.fetch("SELECT id, v, v::text AS text FROM amounts ORDER BY v")
        assert [r["id"] for r in got] == list(range(len(values)))  # ordered as integers
        for r in got:
            expected = values[r["id"]]
            assert type(r["v"]) is Decimal  # never float
            assert r["v"] == expected and int(r["v"]) == expected
            assert r["text"] == str(expected)  # what the server stored, exactly
        # arithmetic on the server is exact at the top of the range
        top = await conn.fetchval("SELECT v - 1 FROM amounts WHERE id = $1", len(values) - 1)
        assert int(top) == UINT256_MAX - 1
        assert await conn.fetchval("SELECT v = $1 FROM amounts WHERE id = 4", Decimal(2**255 + 1))
        # the hazard on the Python side: Decimal arithmetic rounds to the context's 28
        # digits, so amounts are computed as int and only converted at the boundary
        assert Decimal(2**255) + 1 != 2**255 + 1
        # and the column refuses what no NUMERIC(78,0) can hold, loudly
        with pytest.raises(asyncpg.NumericValueOutOfRangeError):
            await conn.execute("INSERT INTO amounts VALUES (99, $1)", 10**78)
    finally:
        await conn.close()


async def test_bigint_positions_round_trip(pg_dsn: str) -> None:
    """`block << 32 | logIndex` fits a signed BIGINT up to block 2**31 - 1, whose last
    log's position is exactly BIGINT's maximum; block 2**31's first one does not fit."""
    last_block = 2**31 - 1
    cases = [
        (0, 0), (1, 0), (2**30, 7), (last_block - 1, 2**32 - 1), (last_block, 0),
        (last_block, 1), (last_block, 2**32 - 1),
    ]  # fmt: skip
    conn = await asyncpg.connect(pg_dsn)
    try:
        await conn.execute("CREATE TABLE logs (position BIGINT PRIMARY KEY)")
        await conn.executemany(
            "INSERT INTO logs VALUES ($1)", [(position(b, i),) for b, i in reversed(cases)]
        )
        got = await conn.fetch("SELECT position, position >> 32 AS block FROM logs ORDER BY 1")
        assert [r["position"] for r in got] == [position(b, i) for b, i in cases]
        assert all(type(r["position"]) is int for r in got)
        assert [r["block"] for r in got] == [block_of(position(b, i)) for b, i in cases]
        assert got[-1]["position"] == BIGINT_MAX
        assert position(2**31, 0) == BIGINT_MAX + 1
        with pytest.raises(asyncpg.DataError, match="out of int64 range"):
            await conn.execute("INSERT INTO logs VALUES ($1)", position(2**31, 0))
    finally:
        await conn.close()


async def test_per_test_database_starts_empty(pg_dsn: str) -> None:
    conn = await asyncpg.connect(pg_dsn)
    try:
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', "
            "'information_schema')"
        )
        assert tables == 0
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        assert await conn.fetchval("SHOW TimeZone") == "UTC"
    finally:
        await conn.close()


def test_databases_are_isolated(postgres: Postgres) -> None:
    a, b = unique_database_name(), unique_database_name()
    dsn_a, dsn_b = postgres.create_database(a), postgres.create_database(b)
    try:

        async def go() -> None:
            ca, cb = await asyncpg.connect(dsn_a), await asyncpg.connect(dsn_b)
            try:
                await ca.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (1)")
                assert await cb.fetchval("SELECT to_regclass('t')") is None
                await cb.execute("CREATE TABLE t (x int); INSERT INTO t VALUES (2), (3)")
                assert await ca.fetch("SELECT x FROM t") == [(1,)]
                assert sorted(await cb.fetch("SELECT x FROM t")) == [(2,), (3,)]
            finally:
                await ca.close()
                await cb.close()

        run_async(go)
    finally:
        postgres.drop_database(a)
        postgres.drop_database(b)

    async def names() -> set[str]:
        conn = await asyncpg.connect(postgres.url)
        try:
            return {r[0] for r in await conn.fetch("SELECT datname FROM pg_database")}
        finally:
            await conn.close()

    assert not {a, b} & run_async(names)


def test_stop_leaves_nothing_behind() -> None:
    server = PostgresServer().start()
    port, base, data, pid = server.port, server.base_dir, server.data_dir, server.pid
    assert port is not None and base is not None and pid is not None
    assert _port_open(port)
    assert pid in _processes_in(data)

    async def stop_under_a_client() -> None:
        # a client still connected, in an open transaction, must not hold the stop up
        conn = await asyncpg.connect(server.url)
        await conn.execute("BEGIN")
        await asyncio.to_thread(server.stop)
        # closed by the server: asyncpg says so whether or not it has seen the EOF yet
        with pytest.raises((asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError)):
            await conn.fetchval("SELECT 1")

    run_async(stop_under_a_client)
    assert not _port_open(port)
    assert not base.exists()
    assert _processes_in(data) == []  # postmaster and every backend gone
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    server.stop()  # idempotent


def test_start_failure_is_a_clear_error_not_a_hang() -> None:
    """A server that dies while starting (here: its port is taken) is reported at once,
    with the log's last lines; its directory is removed."""
    before = _own_dirs()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", free_port()))
        taken.listen()
        port = taken.getsockname()[1]
        server = PostgresServer(port=port, start_timeout=60)
        started = time.monotonic()
        with pytest.raises(PostgresError) as failure:
            server.start()
        waited = time.monotonic() - started
    message = str(failure.value)
    assert "postgres exited during start" in message
    assert "Address already in use" in message  # from the server's own log
    assert "postgres.log" in message
    assert waited < 30, f"took {waited:.1f} s to notice"  # initdb + the crash, not the timeout
    assert server.base_dir is None and server.pid is None
    assert _own_dirs() == before


def test_directories_of_killed_runs_are_swept() -> None:
    """A run killed with SIGKILL leaves its directory (its server quits with it); the
    next start removes it, but never one whose owner still runs."""
    gone = subprocess.Popen(["true"])
    gone.wait()  # reaped: its pid names no process now
    stale, live = (Path(tempfile.mkdtemp(prefix=DIR_PREFIX)) for _ in range(2))
    try:
        (stale / OWNER_FILE).write_text(f"{gone.pid}\n")
        (stale / "data").mkdir()
        (live / OWNER_FILE).write_text("1\n")  # init: always alive
        sweep_stale_dirs()
        assert not stale.exists()
        assert live.exists()
    finally:
        for path in (stale, live):
            if path.exists():
                shutil.rmtree(path)


def test_binaries_the_user_cannot_reach_are_linked_in(tmp_path: Path) -> None:
    """A checkout under /root (0700) hides the venv's binaries from `nobody`: as root, the
    server then runs from a linked copy inside its own directory. As another user, the
    binaries are that user's own and run where they are."""
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    install = link_install(find_install(), hidden)
    with PostgresServer(install=install) as server:
        assert server.base_dir is not None
        if os.geteuid() == 0:
            assert server.install.is_relative_to(server.base_dir)
        else:
            assert server.install == install
        server.create_database("reached")
        version = run_async(lambda: _server_version(server.dsn("reached")))
        assert version.startswith("16.")


async def _server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


def test_external_server_interface(local_server: PostgresServer) -> None:
    """What WARDEN_TEST_POSTGRES gives the fixtures: databases created and dropped on a
    server the suite did not start, the URL's user, host and options kept."""
    ext = ExternalPostgres(local_server.url)
    assert ext.url == local_server.url
    name = unique_database_name()
    dsn = ext.create_database(name)
    assert dsn == local_server.dsn(name)
    assert run_async(lambda: _server_version(dsn))
    ext.stop()  # drops what the run left
    with pytest.raises(asyncpg.InvalidCatalogNameError):
        run_async(lambda: _server_version(dsn))
    with_options = ExternalPostgres("postgresql://u:p@db.internal:6543/main?sslmode=disable")
    assert with_options.url == "postgresql://u:p@db.internal:6543/main?sslmode=disable"
    assert with_options.dsn("x") == "postgresql://u:p@db.internal:6543/x?sslmode=disable"
    assert ExternalPostgres("postgresql://u@h/").url == "postgresql://u@h/postgres"
    with pytest.raises(PostgresError, match=r"postgresql://"):
        ExternalPostgres("mysql://u@h/db")
