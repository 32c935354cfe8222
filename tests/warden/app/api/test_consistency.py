"""Pagination while the indexer writes, and reads that never see (or wait for) the
writer's open transaction."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path
from typing import Any

import aiosqlite
from eth_utils.address import to_checksum_address

from indexer import IndexerStore, open_database
from indexer.schema import SESSION_FIELDS, session_row
from indexer.store import Batch
from tests.indexer._support import opened
from tests.warden.app.api.conftest import Indexed, serve_api
from tests.warden.app.api.test_sessions import collect
from warden.app.api import LiveState


def copy_db(indexed: Indexed, tmp_path: Path) -> Path:
    target = tmp_path / "copy.sqlite"
    with sqlite3.connect(indexed.path) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    return target


def _address(n: int) -> str:
    return str(to_checksum_address(f"0x{n:040x}"))  # stored as the indexer stores them


async def _add_session(store: IndexerStore, n: int, **changes: Any) -> str:
    """A new session after every indexed one (the indexer only ever appends)."""
    sessions = await store.all_sessions()
    top = sessions[-1]
    wallet = _address(0xC0FFEE00 + n)
    new = dataclasses.replace(
        top, wallet=wallet, created_position=top.last_position + 1_000 * n, **changes
    )
    await _commit(store, new)
    return wallet


async def _commit(store: IndexerStore, *sessions: object) -> None:
    checkpoint = await store.checkpoint()
    assert checkpoint is not None
    batch = Batch(blocks=[], events=[], ignored=[], sessions=list(sessions),  # type: ignore[arg-type]
                  checkpoint=checkpoint)  # fmt: skip
    await store.commit(batch, window=16)


async def test_pages_have_no_duplicates_or_gaps_while_sessions_are_added(
    indexed: Indexed, tmp_path: Path
) -> None:
    path = copy_db(indexed, tmp_path)
    async with serve_api(path, LiveState()) as api, opened(path) as store:
        before = [s.wallet for s in await store.all_sessions()]
        seen: list[str] = []
        added: list[str] = []
        cursor: str | None = None
        while True:
            params = {"limit": "4", **({"cursor": cursor} if cursor else {})}
            page = await api.ok("/sessions", params=params)
            seen += [s["wallet"] for s in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
            if len(added) < 3:
                added.append(await _add_session(store, len(added) + 1))
                # an already listed session changes: it must not come round again
                first = (await store.sessions([seen[0]]))[seen[0]]
                await _commit(store, dataclasses.replace(first, status="closed"))
        assert seen == before + added
        assert len(set(seen)) == len(seen)


async def test_events_pages_continue_across_inserts(indexed: Indexed, tmp_path: Path) -> None:
    path = copy_db(indexed, tmp_path)
    async with serve_api(path, LiveState()) as api, opened(path) as store:
        wallet = max(await store.all_sessions(), key=lambda s: s.last_seq).wallet
        events = await store.events(wallet)
        page = await api.ok(f"/sessions/{wallet}/events", params={"limit": "2"})
        # a later event of the same wallet arrives between two pages
        last = events[-1]
        late = dataclasses.replace(
            last, position=last.position + (1 << 32), seq=(last.seq or 0) + 1
        )
        checkpoint = await store.checkpoint()
        assert checkpoint is not None
        await store.commit(Batch([], [late], [], [], checkpoint), window=16)
        got = page["items"] + await collect(
            api, f"/sessions/{wallet}/events", 2, cursor=page["next_cursor"]
        )
        assert [e["position"] for e in got] == [e.position for e in events] + [late.position]


async def test_reads_never_see_the_writers_open_transaction(
    indexed: Indexed, tmp_path: Path
) -> None:
    path = copy_db(indexed, tmp_path)
    writer = await open_database(path)
    try:
        store = IndexerStore(writer)
        count = len(await store.all_sessions())
        async with serve_api(writer, LiveState()) as api:  # handed the writer's connection
            top = (await store.all_sessions())[-1]
            await writer.execute("BEGIN IMMEDIATE")
            new = dataclasses.replace(
                top, wallet=_address(77), created_position=top.last_position + 9
            )
            marks = ", ".join("?" for _ in SESSION_FIELDS)
            await writer.execute(
                f"INSERT INTO sessions ({', '.join(SESSION_FIELDS)}) VALUES ({marks})",
                session_row(new),
            )
            page = await api.ok("/sessions", params={"limit": "1000"})
            assert len(page["items"]) == count  # uncommitted: invisible, and no waiting
            await writer.execute("COMMIT")
            page = await api.ok("/sessions", params={"limit": "1000"})
            assert len(page["items"]) == count + 1 and page["items"][-1]["wallet"] == new.wallet
            status, body = await api.get(f"/sessions/{new.wallet.lower()}")
            assert status == 200 and body["session"]["wallet"] == new.wallet
    finally:
        await writer.close()


async def test_an_in_memory_database_is_shared(tmp_path: Path) -> None:
    db = await aiosqlite.connect(":memory:", isolation_level=None)
    try:
        await IndexerStore(db).setup()
        async with serve_api(db, LiveState()) as api:
            assert await api.ok("/sessions") == {"items": [], "next_cursor": None}
            assert (await api.ok("/status"))["indexed_block"] is None
            assert (await api.ok("/intents"))["items"] == []  # no executor tables: no intents
    finally:
        await db.close()


async def test_a_missing_database_fails_at_start_not_per_request(tmp_path: Path) -> None:
    served = serve_api(tmp_path / "absent.sqlite", LiveState())
    try:
        await served.__aenter__()
    except sqlite3.OperationalError as exc:
        assert "unable to open" in str(exc)
    else:
        await served.__aexit__(None, None, None)
        raise AssertionError("the API started without its database")
    finally:
        if served.http is not None:
            await served.http.close()
    assert not (tmp_path / "absent.sqlite").exists()  # read-only: never created
