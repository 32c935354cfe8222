"""`warden db export`: every record, exact amounts as decimal strings, the documented
columns, the filters, the same bytes from SQLite and from PostgreSQL, and bad flags or
targets refused with the flag and the fix (a full device: exit 3, nothing left behind)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from database import open_database
from database.copy import copy_tables
from executor.export import INTENT_COLUMNS, JOB_COLUMNS, TRANSACTION_COLUMNS
from indexer.export import EVENT_COLUMNS, SESSION_COLUMNS
from tests._sessions import FACTORY, OWNERS, U256_MAX, build, wallet
from tests.warden.app.test_storage import mount, mounted
from warden.app.export import CSV_INTENT_COLUMNS
from warden.app.schema import upgrade
from warden.cli import main
from warden.cli.exit_codes import ExitCode

N = 90


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("export") / "warden.sqlite", N, intents=8)


def export(capsysbinary: pytest.CaptureFixture[bytes], *args: str) -> tuple[int, bytes, str]:
    code = main(["db", "export", *args])
    out, err = capsysbinary.readouterr()
    text = err.decode()
    assert "Traceback" not in text
    return code, out, text


def ndjson(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.decode().splitlines()]


def test_sessions_as_ndjson_keep_every_amount_exact(
    live: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, err = export(capsysbinary, "sessions", "--db", str(live))
    assert code == ExitCode.OK, err
    rows = ndjson(out)
    assert len(rows) == N and list(rows[0]) == list(SESSION_COLUMNS)
    for i, row in enumerate(rows):  # in creation order
        assert row["wallet"] == wallet(i)
        assert row["balance"] == str(U256_MAX - i) and row["budget"] == str(U256_MAX)
        assert row["spent"] == str(2**64 + i) and row["take_profit"] == str(2**53 + 1)
        assert row["targets"] == [OWNERS[2]]  # a JSON list, not its text
    assert f"export: {N} sessions" in err


def test_sessions_as_csv_have_the_documented_header(
    live: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, _ = export(capsysbinary, "sessions", "--db", str(live), "--format", "csv")
    assert code == ExitCode.OK
    rows = list(csv.reader(io.StringIO(out.decode())))
    assert rows[0] == list(SESSION_COLUMNS) and len(rows) == N + 1
    balance = rows[0].index("balance")
    assert [r[balance] for r in rows[1:]] == [str(U256_MAX - i) for i in range(N)]
    docs = (Path(__file__).resolve().parents[3] / "docs/operations.md").read_text()
    for name in (*SESSION_COLUMNS, *EVENT_COLUMNS, *CSV_INTENT_COLUMNS):
        assert f"`{name}`" in docs, f"column {name} is not documented"


def test_events_carry_their_arguments_as_json(
    live: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, _ = export(capsysbinary, "events", "--db", str(live))
    rows = ndjson(out)
    assert code == 0 and len(rows) == N and list(rows[0]) == list(EVENT_COLUMNS)
    assert rows[5]["args"]["deposit"] == str(U256_MAX - 5)
    assert [r["position"] for r in rows] == sorted(r["position"] for r in rows)


def test_intents_carry_their_jobs_and_transactions(
    live: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, out, _ = export(capsysbinary, "intents", "--db", str(live))
    rows = ndjson(out)
    assert code == 0 and len(rows) == 8
    assert list(rows[0])[: len(INTENT_COLUMNS)] == list(INTENT_COLUMNS)
    pending, confirmed = rows[0], rows[1]
    assert pending["state"] == "pending" and pending["jobs"] == []
    (job,) = confirmed["jobs"]
    assert list(job)[: len(JOB_COLUMNS)] == list(JOB_COLUMNS)
    assert job["effective_gas_price"] == str(2**70 + 1)
    assert [t["state"] for t in job["transactions"]] == ["replaced", "mined"]
    assert [t["max_fee_per_gas"] for t in job["transactions"]] == [str(U256_MAX), str(U256_MAX - 1)]
    assert list(job["transactions"][0]) == list(TRANSACTION_COLUMNS)
    assert "raw" not in job["transactions"][0]  # the signed bytes stay in the outbox
    code, out, _ = export(capsysbinary, "intents", "--db", str(live), "--format", "csv")
    table = list(csv.DictReader(io.StringIO(out.decode())))
    # a pending intent without a job: one row; a confirmed one: one per transaction
    assert len(table) == 4 * 1 + 4 * 2
    assert list(table[0]) == list(CSV_INTENT_COLUMNS)
    assert {r["tx_max_fee_per_gas"] for r in table if r["tx_hash"]} == {
        str(U256_MAX), str(U256_MAX - 1)
    }  # fmt: skip


def test_filters(live: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    owner = OWNERS[1]
    _, out, _ = export(capsysbinary, "sessions", "--db", str(live), "--owner", owner.lower())
    rows = ndjson(out)
    assert len(rows) == N // 3 and {r["owner"] for r in rows} == {owner}
    _, out, _ = export(capsysbinary, "sessions", "--db", str(live), "--status", "closed",
                       "--owner", owner)  # fmt: skip
    assert all(r["status"] == "closed" and r["owner"] == owner for r in ndjson(out))
    _, out, _ = export(capsysbinary, "sessions", "--db", str(live), "--from-block", "102",
                       "--to-block", "103")  # fmt: skip
    assert [r["created_block"] for r in ndjson(out)] == [102] * 10 + [103] * 10
    _, out, _ = export(capsysbinary, "events", "--db", str(live), "--owner", owner,
                       "--status", "revoked")  # fmt: skip
    events = ndjson(out)
    assert events and all(json.dumps(e["args"]).count(owner) for e in events)
    _, out, _ = export(capsysbinary, "intents", "--db", str(live), "--status", "confirmed",
                       "--to-block", "100")  # fmt: skip
    assert [r["state"] for r in ndjson(out)] == ["confirmed"] * 4
    _, out, _ = export(capsysbinary, "intents", "--db", str(live), "--owner", OWNERS[0])
    assert {r["wallet"] for r in ndjson(out)} == {wallet(0), wallet(3), wallet(6)}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--status", "open"], "--status 'open' is not a session status: use one of active"),
        (["--owner", "0x12"], "--owner '0x12' is not an address"),
        (["--from-block", "9", "--to-block", "3"], "--from-block 9 is after --to-block 3"),
        (["--from-block", "-1"], "--from-block -1 is not a block number"),
    ],
)
def test_bad_flags_name_the_flag(
    live: Path, capsysbinary: pytest.CaptureFixture[bytes], args: list[str], expected: str
) -> None:
    code, out, err = export(capsysbinary, "sessions", "--db", str(live), *args)
    assert code == ExitCode.CONFIG and expected in err and out == b""


def test_an_intent_state_is_checked_against_intent_states(
    live: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, _, err = export(capsysbinary, "intents", "--db", str(live), "--status", "closed")
    assert code == ExitCode.CONFIG and "is not an intent state: use one of pending" in err


def test_unusable_targets(
    live: Path, tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    existing = tmp_path / "x.ndjson"
    existing.write_text("mine")
    for args, expected in [
        (["--out", str(existing)], "exists: name a new file, or pass --force"),
        (["--out", str(tmp_path / "no" / "x.csv")], "does not exist — create it"),
        (["--out", str(tmp_path)], "is a directory"),
    ]:
        code, _, err = export(capsysbinary, "sessions", "--db", str(live), *args)
        assert code == ExitCode.CONFIG and expected in err, err
    assert existing.read_text() == "mine"
    before = live.read_bytes()
    for own in (live, Path(f"{live}-wal"), live.parent / "." / live.name):
        code, _, err = export(capsysbinary, "sessions", "--db", str(live), "--out", str(own),
                              "--force")  # fmt: skip
        assert code == ExitCode.CONFIG and "is the database's own file" in err, err
    assert live.read_bytes() == before
    code, _, err = export(capsysbinary, "sessions", "--db", str(live), "--out", "/dev/full")
    assert code == ExitCode.STORAGE and "No space left on device" in err and "free space" in err
    code, _, _ = export(capsysbinary, "sessions", "--db", str(live), "--out", str(existing),
                        "--force", "--quiet")  # fmt: skip
    assert code == 0 and len(existing.read_text().splitlines()) == N
    assert [p.name for p in tmp_path.iterdir()] == ["x.ndjson"]  # no partial file left


def test_a_full_disk_mid_export_leaves_nothing(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    live = build(tmp_path / "w.sqlite", 2_000)
    with mounted(tmp_path / "small", "-t", "tmpfs", "-o", "size=64k", "tmpfs") as disk:
        code, _, err = export(capsysbinary, "sessions", "--db", str(live), "--out",
                              str(disk / "s.ndjson"))  # fmt: skip
        assert code == ExitCode.STORAGE and "free space" in err, err
        assert list(disk.iterdir()) == []
    data = tmp_path / "data"
    data.mkdir()
    with mounted(tmp_path / "ro", "--bind", str(data)) as view:
        mount("-o", "remount,ro,bind", str(view))
        code, _, err = export(capsysbinary, "sessions", "--db", str(live), "--out",
                              str(view / "s.ndjson"))  # fmt: skip
        assert code == ExitCode.CONFIG and "read-only file system" in err, err


async def _to_postgres(source: Path, dsn: str) -> None:
    sqlite = await open_database(source, read_only=True)
    pg = await open_database(dsn)
    try:
        await upgrade(pg, dsn, "pg", keep=3, directory=None, chain_id=31337, factory=FACTORY)
        tables = ["sessions", "events", "checkpoint", "intents", "jobs", "job_intents",
                  "transactions"]  # fmt: skip
        await copy_tables(sqlite, pg, tables)
    finally:
        await sqlite.close()
        await pg.close()


@pytest.mark.parametrize("what", ["sessions", "events", "intents"])
@pytest.mark.parametrize("fmt", ["ndjson", "csv"])
def test_postgresql_exports_the_same_bytes(
    live: Path, pg_dsn: str, what: str, fmt: str, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    asyncio.run(_to_postgres(live, pg_dsn))
    _, from_sqlite, _ = export(capsysbinary, what, "--db", str(live), "--format", fmt)
    code, from_pg, err = export(capsysbinary, what, "--db", pg_dsn, "--format", fmt,
                                "--owner", OWNERS[0].lower(), "--quiet")  # fmt: skip
    assert code == 0, err
    _, filtered, _ = export(capsysbinary, what, "--db", str(live), "--format", fmt,
                            "--owner", OWNERS[0], "--quiet")  # fmt: skip
    assert from_pg == filtered and len(from_pg) > 0
    _, everything, _ = export(capsysbinary, what, "--db", pg_dsn, "--format", fmt, "--quiet")
    assert everything == from_sqlite


def test_a_missing_database_is_named(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    code, _, err = export(capsysbinary, "sessions", "--db", str(tmp_path / "none.sqlite"))
    assert code == ExitCode.CONFIG and "there is no database at" in err
    assert not (tmp_path / "none.sqlite").exists()
    assert os.listdir(tmp_path) == []


def test_a_reader_that_stops_early_is_not_an_error(tmp_path: Path) -> None:
    """`warden db export … | head -1`: the pipe closes early; no traceback, exit 0."""
    live = build(tmp_path / "w.sqlite", 20_000)
    shell = (
        f"{sys.executable} -m warden db export sessions --db {live} --quiet | head -1; "
        'echo "status ${PIPESTATUS[0]}"'
    )
    out = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, timeout=120)
    first, status = out.stdout.splitlines()
    assert json.loads(first)["wallet"] == wallet(0)
    assert status == "status 0" and out.stderr == "", out.stderr
