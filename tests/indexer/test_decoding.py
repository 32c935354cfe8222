"""The backfill's decoding: the same rows however it is done, and decode workers that
fail loudly and leave nothing behind.

- the stored JSON of an event's arguments made by the decoder (`Event.args_json`) is
  byte for byte `schema.encode_args` of its arguments, for every event and every value
  (uint256 as decimal text, never a float);
- `decode` + `select` classify a range as one pass did (look-alikes, malformed logs, a
  wallet known from its creation on), and a fault in a log's shape raises the same error
  in a worker as in-process;
- a backfill with decode workers stores exactly the rows of an in-process one and of a
  block-by-block follow, on SQLite and PostgreSQL;
- a worker killed mid-backfill is `DecodeWorkerFailed` (a clear, retryable error, not a
  hang), `close()` leaves no process, and neither does a kill -9 of the parent;
- the garbage collector's pace is restored after indexing, however it ends.
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from eth_abi.abi import encode
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from chain import ChainClient
from chain.abi import EventSpec, event_specs
from database import open_database
from indexer import ChainSettings, IndexerStore
from indexer.collector import YOUNG_THRESHOLD, indexing_pace
from indexer.decoding import DecodeWorkerFailed, RangeDecoder
from indexer.logs import NOT_OURS, classify, decode, select
from indexer.schema import args_templates, encode_args
from indexer.store import BlockRef
from tests._chain import Chain
from tests._postgres import Postgres, unique_database_name
from tests.chain.test_abi_vs_eth_abi import to_abi, values
from tests.conftest import Roles, Session, Stack
from tests.indexer._support import FAST_RETRY, config, index_to_head, indexer, opened, rows, settle
from tests.indexer.test_indexing import activity

SPECS = {spec.name: spec for spec in event_specs().values()}
FACTORY = "0x" + "fa" * 20
WALLET = "0x" + "0a" * 20
HEADERS = {n: BlockRef(n, f"0x{n:064x}", "", 1_700_000_000 + n) for n in range(1, 20)}


def raw_log(spec: EventSpec, args: dict[str, Any], *, block: int = 1, index: int = 0,
            address: str = WALLET) -> dict[str, Any]:  # fmt: skip
    """The JSON-RPC form of a log of `spec` carrying `args`, as a node answers it."""
    topics = [spec.topic] + [encode([t], [to_abi(t, args[f])]) for f, t in spec.indexed]
    data = encode([t for _, t in spec.data], [to_abi(t, args[f]) for f, t in spec.data])
    return {
        "address": address,
        "topics": ["0x" + t.hex() for t in topics],
        "data": "0x" + data.hex(),
        "blockNumber": hex(block),
        "blockHash": HEADERS[block].hash,
        "transactionHash": "0x" + "77" * 32,
        "transactionIndex": "0x0",
        "logIndex": hex(index),
        "removed": False,
    }


def test_plain_events_are_every_wallet_event() -> None:
    """The one-format path covers what a backfill is made of; the rest stays generic."""
    wallet_events = {s.name for s in SPECS.values() if s.source == "wallet"}
    assert wallet_events <= set(args_templates())
    assert "SessionCreated" not in args_templates()  # string and address[]: generic


@pytest.mark.parametrize("name", sorted(SPECS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_stored_args_text_is_encode_args(name: str, data: st.DataObject) -> None:
    spec = SPECS[name]
    args = {f: data.draw(values(t), label=f) for f, t in (*spec.indexed, *spec.data)}
    address = FACTORY if spec.source == "factory" else WALLET

    (record,) = decode([raw_log(spec, args, address=address)], HEADERS).records
    event = record[6]

    assert event is not None and event.args == args
    stored = event.args_json if event.args_json is not None else encode_args(event.args)
    assert stored == encode_args(args)
    assert event.args_json is None or name in args_templates()
    for field, value in orjson.loads(stored).items():  # exact: ints as decimal text
        if isinstance(args[field], int) and not isinstance(args[field], bool):
            assert value == str(args[field])


def _executed(seq: int) -> dict[str, Any]:
    return {
        "target": "0x" + "Ab" * 20, "seq": seq, "selector": "0x12345678",
        "approved": 2**256 - 1, "spent": 10**30, "received": 0, "totalSpent": 10**30 + 1,
        "balanceAfter": 2**255,
    }  # fmt: skip


def test_decode_then_select_classifies_as_one_pass_did() -> None:
    created_spec = SPECS["SessionCreated"]
    created = {
        "wallet": "0x" + "0B" * 20, "owner": "0x" + "01" * 20, "operator": "0x" + "02" * 20,
        "token": "0x" + "03" * 20, "deposit": 5, "fee": 1, "expiry": 9, "budget": 7,
        "stopLoss": 0, "takeProfit": 0, "policy": "p", "targets": [], "salt": "0x" + "00" * 32,
        "balanceAfter": 4,
    }  # fmt: skip
    new_wallet = "0x" + "0b" * 20
    executed = SPECS["Executed"]
    logs = [
        raw_log(executed, _executed(1), block=3, index=0, address=new_wallet),  # after creation
        raw_log(created_spec, created, block=2, index=5, address=FACTORY),
        raw_log(executed, _executed(1), block=1, index=0, address=new_wallet),  # before it
        raw_log(executed, _executed(4), block=3, index=1, address=WALLET),  # known wallet
        raw_log(executed, _executed(2), block=3, index=2, address="0x" + "ee" * 20),  # stranger
    ]
    bad = raw_log(executed, _executed(3), block=4, index=0, address=WALLET)
    bad["data"] = bad["data"][:-64]  # a word short: malformed
    logs.append(bad)

    out = classify(logs, HEADERS, FACTORY, lambda a: a == WALLET)

    assert [(e.block_number, e.name) for e in out.events] == [
        (2, "SessionCreated"), (3, "Executed"), (3, "Executed"),
    ]  # fmt: skip
    assert [e.wallet.lower() for e in out.events if e.wallet] == [new_wallet, new_wallet, WALLET]
    assert [c.lower() for c in out.created] == [new_wallet]
    assert [(i.block_number, i.reason == NOT_OURS) for i in out.ignored] == [
        (1, True), (3, True), (4, False),
    ]  # fmt: skip
    assert out.ignored[-1].reason.startswith("malformed: ")
    assert out.events[1].args_json == encode_args(out.events[1].args)
    assert out.events[0].timestamp == HEADERS[2].timestamp


def test_a_log_of_ours_without_its_header_raises_and_a_lookalikes_does_not() -> None:
    executed = SPECS["Executed"]
    orphan = raw_log(executed, _executed(1), block=1, address=WALLET)
    orphan["blockNumber"] = hex(99)  # no header for block 99
    decoded = decode([orphan], HEADERS)
    assert select(decoded, FACTORY, lambda a: False).ignored[0].reason == NOT_OURS
    with pytest.raises(KeyError):
        select(decoded, FACTORY, lambda a: True)


def _bad_topic_logs() -> list[dict[str, Any]]:
    log = raw_log(SPECS["Executed"], _executed(1), address=WALLET)
    log["topics"][1] = "0xnothex"
    return [log]


async def test_a_fault_raises_the_same_error_in_a_worker_as_in_process() -> None:
    for workers in (0, 1):
        decoder = RangeDecoder(workers)
        try:
            with pytest.raises(ValueError, match="non-hexadecimal"):
                await decoder.decode(_bad_topic_logs(), HEADERS)
        finally:
            await decoder.close()


async def test_a_worker_decodes_what_this_process_decodes() -> None:
    logs = [raw_log(SPECS["Executed"], _executed(i), index=i) for i in range(50)]
    here = decode(logs, HEADERS)
    decoder = RangeDecoder(1)
    try:
        there = await decoder.decode(logs, HEADERS)
    finally:
        await decoder.close()
    assert there.records == here.records and there.wallets == here.wallets
    assert [r[6].args_json for r in there.records] == [r[6].args_json for r in here.records]  # type: ignore[union-attr]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped by its parent) is gone for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pids: list[int], timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if _alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if _alive(p)]


def _worker_pids(decoder: RangeDecoder) -> list[int]:
    pool = decoder._pool
    assert pool is not None
    pids = [p.pid for p in pool._processes.values()]
    assert None not in pids
    return [p for p in pids if p is not None]


async def test_a_killed_worker_is_a_clear_error_and_close_leaves_no_process() -> None:
    logs = [raw_log(SPECS["Executed"], _executed(i), index=i) for i in range(20)]
    decoder = RangeDecoder(2)
    try:
        await decoder.decode(logs, HEADERS)  # the pool is up
        pids = _worker_pids(decoder)
        os.kill(pids[0], signal.SIGKILL)
        with pytest.raises(DecodeWorkerFailed, match=r"chain\.decode_workers: 0") as caught:
            async with asyncio.timeout(60):  # a hang fails the test, not the suite
                for _ in range(200):  # until the pool notices the death
                    await decoder.decode(logs, HEADERS)
                    await asyncio.sleep(0.05)
        assert "died" in str(caught.value)
    finally:
        await decoder.close()
    assert _wait_gone(pids) == []


def test_a_kill_9_of_the_parent_leaves_no_worker(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys, time
        from indexer.decoding import RangeDecoder
        from tests.indexer.test_decoding import HEADERS, SPECS, _executed, raw_log

        async def main():
            decoder = RangeDecoder(2)
            await decoder.decode([raw_log(SPECS["Executed"], _executed(1))], HEADERS)
            pids = [p.pid for p in decoder._pool._processes.values()]
            print(" ".join(map(str, pids)), flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        pids = [int(p) for p in line.split()]
        if not pids:  # the child failed: show why (it has exited, so this cannot block)
            proc.wait(timeout=60)
            raise AssertionError(proc.stderr.read().decode() if proc.stderr else "no output")
        assert all(_alive(p) for p in pids)
        proc.kill()  # SIGKILL: no cleanup runs in the parent
        proc.wait(timeout=30)
        assert _wait_gone(pids) == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


async def test_backfill_with_decode_workers_stores_the_same_rows(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    follow_path = tmp_path / "follow.sqlite"
    async with (
        opened(follow_path) as store,
        ChainClient([fresh_chain.anvil.url], retry=FAST_RETRY) as client,
    ):
        follower = indexer(client, store, stack.factory.address, reorg_window=10_000)
        for _ in range(3):
            activity(fresh_chain, stack, roles, make_session)
            await settle(follower)
    found = {}
    for workers in (0, 1, 2):
        path = tmp_path / f"workers{workers}.sqlite"
        cfg = config(stack.factory.address, reorg_window=2, log_range=3, max_log_range=8,
                     concurrency=3, decode_workers=workers)  # fmt: skip
        await index_to_head(fresh_chain.anvil.url, path, cfg)
        found[workers] = rows(path)
    assert len(found[0]["events"]) >= 39 and found[0]["ignored"]
    assert found[0] == found[1] == found[2] == rows(follow_path)


async def test_decode_workers_on_postgresql_store_the_same_rows(
    postgres: Postgres,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    activity(fresh_chain, stack, roles, make_session)
    tables: list[list[Any]] = []
    for workers in (0, 1):
        name = unique_database_name()
        db = await open_database(postgres.create_database(name))
        try:
            store = IndexerStore(db)
            await store.setup()
            async with ChainClient([fresh_chain.anvil.url], retry=FAST_RETRY) as client:
                follower = indexer(client, store, stack.factory.address, reorg_window=2,
                                   log_range=2, concurrency=2, decode_workers=workers)  # fmt: skip
                await follower.sync_to_head()
            tables.append(
                [await db.fetch(f"SELECT * FROM {t} ORDER BY 1")
                 for t in ("events", "sessions", "ignored_logs")]
            )  # fmt: skip
        finally:
            await db.close()
            postgres.drop_database(name)
    assert tables[0] == tables[1] and tables[0][0]


def test_the_collector_pace_is_restored_however_indexing_ends() -> None:
    before = gc.get_threshold()
    with pytest.raises(RuntimeError), indexing_pace():
        assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
        raise RuntimeError("a range failed")
    assert gc.get_threshold() == before
    # two indexers' blocks ending in the other order: the last one out restores
    first, second = indexing_pace(), indexing_pace()
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before


@pytest.mark.parametrize("value", [-1, 65, "two"])
def test_decode_workers_out_of_range_is_refused(value: Any) -> None:
    with pytest.raises(ValidationError, match="decode_workers"):
        ChainSettings(decode_workers=value)
    assert ChainSettings().decode_workers == 0  # in-process unless asked
