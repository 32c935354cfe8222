"""Tracking and replacement of live jobs against the in-process node of `_fake_node.py`:
every case where a real node adds nothing (what a node *does* with a replacement is
`test_fees.py`'s anvil test; the whole loop on anvil is `test_executor.py`'s).

Each test drives the node by hand: `node.mine()`, `node.reorg()`, `node.refusals`, and
`store.sync()` for the indexer catching up; time for the tracker is a fake clock.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from eth_utils.address import to_checksum_address

from chain.reverts import error_specs
from chain.transport import RpcFault
from executor import Executor, Outbox, Signer, StepReport
from executor.tracking import NONCE_TAKEN_AFTER
from indexer import open_database
from tests.executor._fake_node import CHAIN_ID, GWEI, FakeNode, FakeStore
from tests.executor._support import RELAYER_KEY, executor_settings, intend, table

FACTORY = "0x" + "fa" * 20
WALLET = to_checksum_address("0x" + "3a" * 20)  # as the indexer stores it


def error_selector(name: str) -> str:
    """The 4-byte selector (hex, no 0x) of one of the contracts' custom errors."""
    return next(s.selector[2:] for s in error_specs().values() if s.name == name)


SESSION_IS_CLOSED = error_selector("SessionIsClosed")


@dataclass
class FakeRig:
    node: FakeNode
    store: FakeStore
    outbox: Outbox
    executor: Executor
    db_path: Path
    clock: list[float]  # the tracker's monotonic clock, in seconds

    @property
    def relayer(self) -> str:
        return self.executor.relayer

    async def intend(self, wallet: str = WALLET) -> str:
        self.store.add_session(wallet, operator=self.relayer)
        return await intend(self.outbox, wallet, now=self.node.head.timestamp)

    async def step(self, *, index: bool = True) -> StepReport:
        if index:
            self.store.sync()
        return await self.executor.step(self.node.head.timestamp)

    async def state(self, key: str) -> str:
        row = await self.outbox.intent(key)
        assert row is not None
        return row.state

    def transactions(self) -> list[tuple[Any, ...]]:
        """(hash, nonce, state, max fee, tip, error) of every signed transaction, in order."""
        return table(
            self.db_path,
            "SELECT hash, nonce, state, CAST(max_fee_per_gas AS INTEGER), "
            "CAST(max_priority_fee_per_gas AS INTEGER), error FROM transactions "
            "ORDER BY created_ms, rowid",
        )


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeRig]:
    async with fake_rig(tmp_path) as r:
        yield r


@contextlib.asynccontextmanager
async def fake_rig(tmp_path: Path, **settings: Any) -> AsyncIterator[FakeRig]:
    node = FakeNode()
    store = FakeStore(node)
    db_path = tmp_path / "w.db"
    db = await open_database(db_path)
    clock = [0.0]
    try:
        async with node.client() as client:
            outbox = Outbox(db)
            await outbox.setup()
            ex = Executor(
                client, outbox, store, executor_settings(**settings),  # type: ignore[arg-type]
                factory=FACTORY, chain_id=CHAIN_ID, dry_run=False,
                signer=Signer.from_raw_key(RELAYER_KEY, chain_id=CHAIN_ID), relayer=None,
            )  # fmt: skip
            ex.tracker.monotonic = lambda: clock[0]
            await ex.start()
            yield FakeRig(node, store, outbox, ex, db_path, clock)
    finally:
        await db.close()


async def test_stuck_low_fee_transaction_is_replaced_and_confirmed_once(fake: FakeRig) -> None:
    node = fake.node
    key = await fake.intend()
    report = await fake.step()
    assert report.jobs == 1 and len(node.pool) == 1
    (first,) = node.pool.values()
    assert first.max_fee == 2 * GWEI + GWEI  # next base fee x 2 + the tip
    node.base_fee = 200 * GWEI  # the market jumps far above what it offered
    node.mine()
    assert (await fake.step()).replaced == 0  # 1 block: replace_after_blocks is 2
    node.mine()
    report = await fake.step()
    assert report.replaced == 1
    (second,) = node.pool.values()  # the replacement took the original's place
    assert second.nonce == first.nonce and second.hash != first.hash
    assert second.max_fee == 2 * 200 * GWEI + GWEI
    assert second.tip >= -(-first.tip * 113 // 100)
    node.mine()
    report = await fake.step()
    assert (report.mined, report.confirmed) == (1, 1)
    assert await fake.state(key) == "confirmed"
    assert await fake.step() == StepReport()  # nothing left to do
    txs = fake.transactions()
    assert [(t[0], t[2]) for t in txs] == [(first.hash, "replaced"), (second.hash, "mined")]
    assert [tx.hash for tx in node.mined(fake.relayer)] == [second.hash]  # closed once


async def test_a_vanished_receipt_makes_the_job_live_and_it_is_sent_again(
    fake: FakeRig,
) -> None:
    node = fake.node
    key = await fake.intend()
    await fake.step()
    node.mine()
    report = await fake.step(index=False)  # the indexer has not seen the block yet
    assert report.mined == 1 and await fake.state(key) == "mined"
    node.reorg(1)  # the block and its transaction are gone
    node.mine()
    report = await fake.step(index=False)
    assert report.reopened == 1 and await fake.state(key) == "submitted"
    assert table(fake.db_path, "SELECT state FROM transactions") == [("signed",)]
    await fake.step(index=False)  # the node holds nothing at its nonce: sent again, as is
    (again,) = node.pool.values()
    node.mine()
    report = await fake.step()
    assert (report.mined, report.confirmed) == (1, 1)
    (tx,) = fake.transactions()  # the same signed bytes, never a new signature
    assert tx[0] == again.hash and tx[2] == "mined"
    assert [t.hash for t in node.mined(fake.relayer)] == [again.hash]


async def test_a_receipt_from_a_block_no_longer_canonical_is_not_believed(
    fake: FakeRig,
) -> None:
    node = fake.node
    key = await fake.intend()
    await fake.step()
    (sent,) = node.pool.values()
    node.mine()
    node.reorg(1, stale_receipts=True)  # the node still serves the receipt of the old block
    node.mine()
    assert node.stale[sent.hash]["blockHash"] != node.head.hash
    report = await fake.step()
    assert report.mined == 0 and await fake.state(key) == "submitted"
    assert list(node.pool.values()) == [sent]  # not mined: sent again
    node.stale.clear()
    node.mine()
    report = await fake.step()
    assert (report.mined, report.confirmed) == (1, 1)
    (job,) = table(fake.db_path, "SELECT mined_block FROM jobs")
    assert job == (node.head.number,)


async def test_nonce_taken_by_an_outside_transaction_is_recovered(fake: FakeRig) -> None:
    node = fake.node
    key = await fake.intend()
    # Someone else with the relayer key uses the nonce the executor synced at start.
    outside = node.send_from(RELAYER_KEY, 0)
    node.mine()
    report = await fake.step()  # refused: nonce too low
    assert report.jobs == 1 and not fake.executor.sender.nonces.synced
    ((_, nonce, state, _, _, error),) = fake.transactions()
    assert (nonce, state) == (0, "rejected") and "nonce too low" in error
    # A used nonce without our receipt counts as taken only some time later: a node may
    # count a transaction a moment before it serves the receipt.
    report = await fake.step()
    assert report.waiting == 1 and await fake.state(key) == "submitted"
    fake.clock[0] += NONCE_TAKEN_AFTER
    report = await fake.step()
    assert report.dropped == 1
    assert report.jobs == 1  # requeued and given a new job at the next nonce in one step
    node.mine()
    await fake.step()
    assert await fake.state(key) == "confirmed"
    jobs = table(fake.db_path, "SELECT nonce, state FROM jobs ORDER BY id")
    assert jobs == [(0, "dropped"), (1, "done")]
    assert [t.nonce for t in node.mined(fake.relayer)] == [0, 1]
    assert node.mined(fake.relayer)[0] == outside


@pytest.mark.parametrize(
    ("message", "state"),
    [("nonce too low", "rejected"), ("already known", "sent")],
)
async def test_a_refused_send_is_decided_by_its_kind_and_the_job_goes_through(
    fake: FakeRig, message: str, state: str
) -> None:
    node = fake.node
    key = await fake.intend()
    node.refusals.append(message)
    await fake.step()
    ((tx_hash, _, got, _, _, _),) = fake.transactions()
    assert got == state
    # "Nonce too low" makes the executor resync before its next nonce; "already known"
    # means the transaction is out there.
    assert fake.executor.sender.nonces.synced == (state == "sent")
    await fake.step()  # the node holds nothing at its nonce: sent again, as is
    assert [t.hash for t in node.pool.values()] == [tx_hash]
    node.mine()
    await fake.step()
    assert await fake.state(key) == "confirmed"
    assert [(t[0], t[2]) for t in fake.transactions()] == [(tx_hash, "mined")]


async def test_an_underpriced_send_is_replaced_at_once(fake: FakeRig) -> None:
    node = fake.node
    key = await fake.intend()
    node.refusals.append("replacement transaction underpriced")
    await fake.step()
    ((first, nonce, state, fee, tip, error),) = fake.transactions()
    assert state == "rejected" and "underpriced" in error and not node.pool
    report = await fake.step()  # no block passed: replaced now, not after 2 blocks
    assert report.replaced == 1
    (second,) = node.pool.values()
    assert second.nonce == nonce
    assert second.max_fee >= -(-fee * 113 // 100) and second.tip >= -(-tip * 113 // 100)
    node.mine()
    await fake.step()
    assert await fake.state(key) == "confirmed"
    assert [(t[0], t[2]) for t in fake.transactions()] == [
        (first, "replaced"),
        (second.hash, "mined"),
    ]


def test_the_fake_node_refuses_what_geth_refuses() -> None:
    # The node's own rules, which the tests above rely on.
    node = FakeNode()
    first = node.send_from(RELAYER_KEY, 0)
    with pytest.raises(RpcFault, match="underpriced"):  # geth wants +10% on both fees
        node.accept(_signed(0, first.max_fee * 2, first.tip * 109 // 100))
    again = _signed(0, first.max_fee * 2, first.tip * 2)
    assert node.accept(again).nonce == 0
    with pytest.raises(RpcFault, match="already known"):
        node.accept(again)
    node.mine()
    with pytest.raises(RpcFault, match="nonce too low"):
        node.accept(_signed(0, first.max_fee * 4, first.tip * 4))


def _signed(nonce: int, max_fee: int, tip: int) -> str:
    signer = Signer.from_raw_key(RELAYER_KEY, chain_id=CHAIN_ID)
    return signer.sign(
        {"type": 2, "chainId": CHAIN_ID, "nonce": nonce, "to": signer.address, "value": 0,
         "data": "0x", "gas": 21_000, "maxFeePerGas": max_fee, "maxPriorityFeePerGas": tip}
    ).raw  # fmt: skip


async def test_a_close_the_node_knows_but_the_index_does_not_waits_for_the_index(
    fake: FakeRig,
) -> None:
    """Found by the 1,000-round reorg chaos: the owner's close was in a block not indexed
    yet, the preflight said SessionIsClosed, the intent was settled obsolete on the node's
    word, and the reorg that removed the close left the due close unsent for good."""
    node = fake.node
    key = await fake.intend()
    closed = "0x" + SESSION_IS_CLOSED
    node.reverts[WALLET.lower()] = closed  # the owner's close, not indexed yet
    report = await fake.step()
    assert report.refused == 1 and await fake.state(key) == "pending"
    refusals = await fake.outbox.refusals(key)
    assert [guard for guard, _ in refusals] == ["index_behind"]
    assert not node.pool  # nothing sent while the node and the index disagree
    del node.reverts[WALLET.lower()]  # a reorg removed the owner's close
    report = await fake.step()
    assert report.jobs == 1 and await fake.state(key) == "submitted"
    node.mine()
    report = await fake.step()
    assert await fake.state(key) == "confirmed"


@pytest.mark.parametrize(
    ("error", "status", "waits"),
    [
        ("SessionIsClosed", "active", True),
        ("SessionIsClosed", "revoked", True),
        ("OperatorRevoked", "active", True),
        ("OperatorRevoked", "revoked", False),  # the index shows it: obsolete at once
        ("NotSweepable", "revoked", True),
        ("NotSweepable", "active", False),  # not expired on the indexed chain either
    ],
)
async def test_an_obsolete_revert_settles_only_what_the_index_shows(
    fake: FakeRig, error: str, status: str, waits: bool
) -> None:
    key = await fake.intend()
    session = fake.store.sessions_by_wallet[WALLET]
    fake.store.sessions_by_wallet[WALLET] = replace(session, status=status)
    fake.node.reverts[WALLET.lower()] = "0x" + error_selector(error)
    await fake.step()
    assert await fake.state(key) == ("pending" if waits else "obsolete")


def wallets(n: int) -> list[str]:
    return [to_checksum_address("0x" + f"{0x41 + i:02x}" * 20) for i in range(n)]


async def test_a_queue_waiting_for_block_space_is_not_replaced_until_outbid(
    tmp_path: Path,
) -> None:
    """Jobs at consecutive nonces behind a front that moves wait for block space, not for
    a fee: none is replaced while the market does not outbid them. Once it does, every
    outbid job is replaced in the same step, not one bump at a time behind the front."""
    async with fake_rig(tmp_path, max_batch_size=1) as fake:
        node = fake.node
        keys = [await fake.intend(w) for w in wallets(4)]
        assert (await fake.step()).jobs == 4 and len(node.pool) == 4
        node.gas_limit = max(tx.gas for tx in node.pool.values())  # one close a block
        for _ in range(2):  # the front moves a nonce a block
            node.mine()
            assert (await fake.step()).replaced == 0
        assert len(node.pool) == 2  # nonces 2 and 3, sent 2 blocks ago (replace_after 2)
        node.mine()
        assert (await fake.step()).replaced == 0
        node.base_fee = 200 * GWEI  # the market outbids the one left behind the front
        node.mine()  # nothing pays enough for this block
        report = await fake.step()
        assert report.replaced == 1 and len(node.pool) == 1
        (tx,) = node.pool.values()
        assert tx.max_fee == 2 * 200 * GWEI + GWEI
        node.mine()
        assert (await fake.step()).confirmed == 1
        assert [await fake.state(k) for k in keys] == ["confirmed"] * 4
        nonces = [t.nonce for t in node.mined(fake.relayer)]
        assert nonces == [0, 1, 2, 3]  # each closed once, by one transaction per nonce


async def test_only_the_front_is_replaced_when_it_is_stuck_without_being_outbid(
    tmp_path: Path,
) -> None:
    """A front nonce the node does not mine though its fees clear (blocks come without
    it, as from a builder that leaves it out) is replaced after `replace_after_blocks` at
    the front; the jobs behind it, which cannot be mined before it, are left alone."""

    def mine_without_ours(node: FakeNode) -> None:
        held = dict(node.pool)
        node.pool.clear()
        node.mine()
        node.pool.update(held)

    async with fake_rig(tmp_path, max_batch_size=1) as fake:
        node = fake.node
        for w in wallets(3):
            await fake.intend(w)
        assert (await fake.step()).jobs == 3
        sent = {tx.nonce: tx.hash for tx in node.pool.values()}
        mine_without_ours(node)
        assert (await fake.step()).replaced == 0
        mine_without_ours(node)
        report = await fake.step()
        assert report.replaced == 1  # the front alone
        now = {tx.nonce: tx.hash for tx in node.pool.values()}
        assert now[0] != sent[0] and (now[1], now[2]) == (sent[1], sent[2])
        mine_without_ours(node)
        assert (await fake.step()).replaced == 0  # behind it: waiting, not bumped
        node.mine()  # a block that takes them: all three, one transaction a nonce
        assert (await fake.step()).confirmed == 3
        assert [t.hash for t in node.mined(fake.relayer)] == [now[0], sent[1], sent[2]]


async def test_a_nonce_given_back_is_taken_again_without_repeating_a_signed_hash(
    fake: FakeRig,
) -> None:
    """After a reorg the node can give back a nonce a dropped job had used, and the same
    close taken up again at that nonce with the same fees would sign the very same bytes:
    the outbox keeps one row per hash, and before this the daemon stopped on the UNIQUE
    constraint (seen in the reorg chaos). The new job signs with one wei more."""
    node = fake.node
    key = await fake.intend()
    assert (await fake.step()).jobs == 1
    ((first, nonce),) = [(r[0], r[1]) for r in fake.transactions()]
    (job_id,) = [r[0] for r in table(fake.db_path, "SELECT id FROM jobs")]
    node.pool.clear()  # the node forgets it, as after a reorg that took its block
    await fake.outbox.job_dropped(job_id, "test: its nonce came back", 0)
    fake.executor.sender.nonces.invalidate()
    report = await fake.step()
    assert report.jobs == 1
    txs = fake.transactions()
    assert len(txs) == 2 and len({t[0] for t in txs}) == 2
    second = txs[1]
    assert second[1] == nonce  # the same nonce, taken again
    assert second[0] != first and second[3] == txs[0][3] + 1 and second[4] == txs[0][4] + 1
    node.mine()
    await fake.step()
    assert await fake.state(key) == "confirmed"
