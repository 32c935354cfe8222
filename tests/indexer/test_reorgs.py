"""Reorgs on a real anvil: `anvil_reorg` replaces the newest blocks with blocks that
create, change or close other sessions; after the indexer settles, its database equals a
fresh index of the new chain."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from eth_typing import ChecksumAddress
from hexbytes import HexBytes

from chain import ChainClient
from indexer import Indexer, IndexerStore, Reorg, Update, open_database
from tests._chain import Chain, CloseReason
from tests.conftest import (
    TOKEN,
    Roles,
    Session,
    Stack,
    as_tuple,
    build_stack,
    make_roles,
    session_params,
    top_up,
)
from tests.indexer._support import FAST_RETRY, config, index_to_head, rows, settle
from warden.devnet import Anvil

# This module runs on its own anvil. On the suite's shared node, after a few hundred
# evm_snapshot/evm_revert cycles, anvil 1.7.1 sometimes mines anvil_reorg's replacement
# transactions with receipts that hold no logs (status 1, no events), so the new branch
# would not be the one the test built. A node of its own keeps the branches honest.


@pytest.fixture(scope="module")
def anvil() -> Iterator[Anvil]:
    with Anvil() as node:
        yield node


@pytest.fixture(scope="module")
def chain(anvil: Anvil) -> Chain:
    return Chain(anvil)


@pytest.fixture(scope="module")
def roles(chain: Chain) -> Roles:
    return make_roles(chain)


@pytest.fixture(scope="module")
def stack(chain: Chain, roles: Roles) -> Stack:
    return build_stack(chain, roles)


_unique = itertools.count()


def tx(contract: Any, fn: str, args: list[Any], sender: str, nonce: int) -> dict[str, Any]:
    """A transaction for anvil_reorg, signed by the node for the unlocked sender.

    The nonce is explicit, and the gas limit differs per transaction so that no two tests
    send a byte-identical transaction: anvil 1.7.1 answers a receipt without logs when a
    replacement block re-mines a transaction hash it has seen before an evm_revert."""
    return {"from": sender, "to": contract.address, "data": contract.encode_abi(fn, args=args),
            "gas": hex(3_000_000 + next(_unique)), "nonce": hex(nonce)}  # fmt: skip


def landed(chain: Chain, head: int, depth: int) -> list[bool]:
    """Whether each transaction in the replacement blocks succeeded and logged something."""
    out = []
    for n in range(head - depth + 1, head + 1):
        for h in chain.w3.eth.get_block(n)["transactions"]:
            receipt = chain.w3.eth.get_transaction_receipt(cast(HexBytes, h))  # hashes only
            out.append(receipt["status"] == 1 and bool(receipt["logs"]))
    return out


class Follower:
    """An indexer following the chain into a file, recording everything it yields."""

    def __init__(self, url: str, path: Path, factory: str, **cfg: Any) -> None:
        self.url, self.path, self.factory, self.cfg = url, path, factory, cfg
        self.updates: list[Update] = []

    async def __aenter__(self) -> Follower:
        self.db = await open_database(self.path)
        store = IndexerStore(self.db)
        await store.setup()
        self.client = ChainClient([self.url], retry=FAST_RETRY)
        settings = config(self.factory, **self.cfg)
        self.indexer = Indexer(self.client, store, settings, factory=self.factory)
        await self.settle()
        return self

    async def settle(self) -> None:
        self.updates.extend(await settle(self.indexer))

    @property
    def reorgs(self) -> list[Reorg]:
        return [u for u in self.updates if isinstance(u, Reorg)]

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self.db.close()


def branch_a(chain: Chain, stack: Stack, roles: Roles, s1: Session, depth: int) -> None:
    """`depth` blocks on the branch that will be orphaned: a deposit, a play, a new
    session, then empty blocks."""
    w = s1.wallet
    top_up(chain, stack, w, 5 * TOKEN, roles.owner)  # 2 blocks so far
    made = 2
    if depth >= 3:
        play = stack.game.encode_abi("play", args=[10 * TOKEN])
        chain.send(w.functions.execute(stack.game.address, play, 10 * TOKEN), roles.operator)
        made += 1
    while made < depth:
        chain.mine()
        made += 1


def branch_b(
    chain: Chain, stack: Stack, roles: Roles, s1: Session, s2: Session, depth: int
) -> list[list[Any]]:
    """Replacement blocks: close s2, withdraw from s1, create a session for owner2."""
    fork = chain.w3.eth.block_number - depth

    def nonce(who: ChecksumAddress, offset: int) -> int:
        return int(chain.w3.eth.get_transaction_count(who, block_identifier=fork)) + offset

    params = session_params(chain, stack, roles, policy="disciple")
    fee = stack.factory.functions.feeFor(params["deposit"]).call()
    approve = [stack.factory.address, params["deposit"] + fee]
    create = [as_tuple(params), b"\x77" * 32]
    return [
        [tx(s2.wallet, "close", [int(CloseReason.OWNER)], roles.owner, nonce(roles.owner, 0)), 0],
        [tx(s1.wallet, "withdraw", [3 * TOKEN], roles.owner, nonce(roles.owner, 1)), 0],
        [tx(stack.token, "approve", approve, roles.owner2, nonce(roles.owner2, 0)), depth - 1],
        [
            tx(stack.factory, "createSession", create, roles.owner2, nonce(roles.owner2, 1)),
            depth - 1,
        ],
    ]


@pytest.mark.parametrize("depth", [1, 2, 3, 5, 8, 10, 12])
async def test_reorg_equals_fresh_index(
    depth: int,
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    s1, s2 = make_session(), make_session(policy="merchant")
    chain.mine()
    async with Follower(chain.anvil.url, tmp_path / "f.sqlite", stack.factory.address) as f:
        branch_a(chain, stack, roles, s1, depth)
        await f.settle()
        before = rows(f.path)
        fork_head = chain.w3.eth.block_number
        chain.anvil.rpc("anvil_reorg", depth, branch_b(chain, stack, roles, s1, s2, depth))
        assert chain.w3.eth.block_number == fork_head
        assert all(landed(chain, fork_head, depth)), "a replacement transaction failed"
        await f.settle()
        after = rows(f.path)
        reorgs = f.reorgs
    assert len(reorgs) == 1
    assert reorgs[0].depth == depth
    fresh = tmp_path / "fresh.sqlite"
    await index_to_head(chain.anvil.url, fresh, config(stack.factory.address))
    assert after == rows(fresh)
    assert after != before
    statuses = {s[0]: s[17] for s in after["sessions"]}
    assert statuses[s2.wallet.address] == "closed"
    assert len(after["sessions"]) == 3


async def test_rollback_over_a_batch_close_naming_no_session(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    """A factory's BatchCloseFailed names an address that is no session (a wallet whose
    creation a reorg took away, or anything a caller passes). A rollback that removes one
    such event, with an older one left, replays the sessions it touched from their own
    events: the address stays no session (the replay once crashed on it)."""
    chain = fresh_chain
    s1 = make_session()
    nobody = roles.stranger
    batch = stack.factory.functions.closeBatch(
        [nobody, s1.wallet.address], [int(CloseReason.EXPIRED)] * 2, 100_000
    )
    async with Follower(chain.anvil.url, tmp_path / "f.sqlite", stack.factory.address) as f:
        chain.send(batch, roles.stranger)  # s1 has not expired: both members fail
        chain.send(batch, roles.stranger)
        await f.settle()
        failed = [e[8] for e in rows(f.path)["events"] if e[9] == "BatchCloseFailed"]
        assert sorted(failed) == sorted([nobody, s1.wallet.address] * 2)
        chain.anvil.rpc("anvil_reorg", 1, [])  # the second batch's block, now empty
        await f.settle()
        after = rows(f.path)
    fresh = tmp_path / "fresh.sqlite"
    await index_to_head(chain.anvil.url, fresh, config(stack.factory.address))
    assert after == rows(fresh)
    failed = [e[8] for e in after["events"] if e[9] == "BatchCloseFailed"]
    assert sorted(failed) == sorted([nobody, s1.wallet.address])
    assert [s[0] for s in after["sessions"]] == [s1.wallet.address]


async def test_revert_to_a_shorter_chain_then_new_blocks(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    """evm_revert makes the chain shorter than the checkpoint before it grows again."""
    chain = fresh_chain
    s1 = make_session()
    snap = chain.snapshot()
    async with Follower(chain.anvil.url, tmp_path / "f.sqlite", stack.factory.address) as f:
        make_session(policy="orphan")
        branch_a(chain, stack, roles, s1, 6)
        await f.settle()
        chain.revert_to(snap)
        await f.settle()  # the chain is now shorter: rolled back to the fork point
        assert len(rows(f.path)["sessions"]) == 1
        make_session(owner=roles.owner2, policy="new branch")
        await f.settle()
        after = rows(f.path)
    fresh = tmp_path / "fresh.sqlite"
    await index_to_head(chain.anvil.url, fresh, config(stack.factory.address))
    assert after == rows(fresh)
    assert sorted(s[4] for s in after["sessions"]) == ["berzerker", "new branch"]


async def test_reorg_deeper_than_the_window_is_resolved_from_event_blocks(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    s1, s2 = make_session(), make_session()
    async with Follower(
        chain.anvil.url, tmp_path / "f.sqlite", stack.factory.address, reorg_window=3
    ) as f:
        branch_a(chain, stack, roles, s1, 9)
        await f.settle()
        chain.anvil.rpc("anvil_reorg", 9, branch_b(chain, stack, roles, s1, s2, 9))
        await f.settle()
        after = rows(f.path)
    fresh = tmp_path / "fresh.sqlite"
    await index_to_head(chain.anvil.url, fresh, config(stack.factory.address))
    assert after == rows(fresh)


async def test_reorg_within_confirmations_is_never_indexed(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    s1, s2 = make_session(), make_session()
    for _ in range(4):
        chain.mine()
    async with Follower(
        chain.anvil.url, tmp_path / "f.sqlite", stack.factory.address, confirmations=4
    ) as f:
        branch_a(chain, stack, roles, s1, 3)
        await f.settle()
        chain.anvil.rpc("anvil_reorg", 3, branch_b(chain, stack, roles, s1, s2, 3))
        await f.settle()
        assert not f.reorgs


async def test_reorg_replacing_everything_indexed_starts_over(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    """Nothing indexed survives (every block since the start block is replaced): the
    indexer rolls back to before its start block and indexes the new branch from there."""
    chain = fresh_chain
    start = chain.w3.eth.block_number + 1
    s1, s2 = make_session(), make_session()
    async with Follower(
        chain.anvil.url, tmp_path / "f.sqlite", stack.factory.address,
        reorg_window=2, start_block=start,
    ) as f:  # fmt: skip
        branch_a(chain, stack, roles, s1, 4)
        await f.settle()
        depth = chain.w3.eth.block_number - start + 1
        chain.anvil.rpc("anvil_reorg", depth, branch_b(chain, stack, roles, s1, s2, depth))
        await f.settle()
        after = rows(f.path)
        (reorg,) = f.reorgs
    assert reorg.ancestor.number == start - 1
    fresh = tmp_path / "fresh.sqlite"
    await index_to_head(chain.anvil.url, fresh, config(stack.factory.address, start_block=start))
    assert after == rows(fresh)
    assert len(after["sessions"]) == 1  # s1 and s2 were created on the orphaned branch
