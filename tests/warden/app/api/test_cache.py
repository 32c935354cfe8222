"""Answers kept until the database changes (`warden.app.api.cache`): the API's own read
connection on a SQLite file that a writer (here, the indexer's store on the same file, as
the daemon's) commits to. Whatever is kept, an answer never shows the database as it was
before a commit the client could already have seen."""

from __future__ import annotations

import shutil
from pathlib import Path

from eth_utils.address import to_checksum_address

from database import open_database
from indexer import IndexerStore
from tests.indexer.test_store_backends import commit, created, event
from tests.warden.app.api.conftest import Indexed, serve_api
from warden.app.api import LiveState
from warden.app.api.app import CACHE
from warden.app.api.cache import ResponseCache

NEW = to_checksum_address("0x" + "7e" * 20)  # as the indexer stores wallets
OWNER = "0x" + "11" * 20


async def test_a_kept_page_is_answered_again_until_a_commit_then_the_new_state(
    indexed: Indexed, tmp_path: Path
) -> None:
    path = tmp_path / "copy.sqlite"
    shutil.copy(indexed.path, path)
    db = await open_database(path)
    store = IndexerStore(db)
    try:
        async with serve_api(path, LiveState()) as api:
            cache = api.server.app[CACHE]
            first = await api.ok("/sessions", params={"limit": "500"})
            again = await api.ok("/sessions", params={"limit": "500"})
            assert again == first and cache.hits == 1  # the second from what was kept
            stats = await api.ok("/stats")
            counted = (await api.ok("/status"))["sessions"]
            # the writer commits: a new session (and the checkpoint moves on)
            top = await store.checkpoint()
            assert top is not None
            n = top.number + 1
            await commit(store, [n], [created(NEW, n, 10**30)])
            after = await api.ok("/sessions", params={"limit": "500"})
            wallets = [s["wallet"].lower() for s in after["items"]]
            assert NEW.lower() in wallets and len(wallets) == len(first["items"]) + 1
            assert (await api.ok("/stats")) != stats  # every kept answer went stale at once
            now = (await api.ok("/status"))["sessions"]
            assert sum(now.values()) == sum(counted.values()) + 1  # its figures too
            detail = await api.ok(f"/sessions/{NEW}")
            assert detail["session"]["deposit"] == str(10**30)  # exact, as a string
            # the session changes again: its kept detail is not answered any more
            await commit(store, [n + 1], [event(NEW, n + 1, 1, "Withdrawn", 1, to=OWNER,
                                                amount=1, balanceAfter=10**30 - 1)])  # fmt: skip
            changed = await api.ok(f"/sessions/{NEW}")
            assert changed["session"]["withdrawn"] == "1"
    finally:
        await db.close()


async def test_errors_and_live_figures_are_never_kept(indexed: Indexed) -> None:
    live = LiveState()
    async with serve_api(indexed.path, live) as api:
        cache = api.server.app[CACHE]
        missing = "0x" + "00" * 19 + "01"
        assert (await api.get(f"/sessions/{missing}"))[0] == 404
        assert (await api.get("/sessions", params={"limit": "0"}))[0] == 400
        assert len(cache) == 0
        live.head = 10
        assert (await api.ok("/status"))["chain_head"] == 10
        live.head = 11  # no commit: /status is not kept, it shows the live head
        assert (await api.ok("/status"))["chain_head"] == 11
        assert len(cache) == 0


def test_the_cache_is_bounded_by_entries_and_bytes() -> None:
    cache = ResponseCache(max_entries=3, max_bytes=1_600)
    for i in range(5):
        cache.put(f"/p{i}", 1, b"x" * 90)
    assert len(cache) == 3 and cache.get("/p0", 1) is None and cache.get("/p4", 1) == b"x" * 90
    cache.put("/big", 1, b"x" * 101)  # over max_bytes / 16: not kept at all
    assert cache.get("/big", 1) is None
    cache.put("/p5", 1, b"y" * 100)
    cache.put("/p6", 1, b"z" * 100)
    assert cache.get("/p4", 2) is None  # another version: stale
    for i in range(20):  # many small answers: the byte bound holds too
        cache.put(f"/q{i}", 1, b"q" * 99)
    assert len(cache) <= 3
