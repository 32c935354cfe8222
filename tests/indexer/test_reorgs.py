"""Reorgs on a real anvil: `anvil_reorg` replaces the newest blocks with blocks that
create, change or close other sessions; after the indexer settles, its database equals a
fresh index of the new chain."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from indexer import ChainClient, Change, Indexer, IndexerStore, open_database
from tests._chain import Chain, CloseReason
from tests.conftest import TOKEN, Roles, Session, Stack, as_tuple, session_params
from tests.indexer._support import FAST_RETRY, config, index_to_head, rows


def tx(contract: Any, fn: str, args: list[Any], sender: str) -> dict[str, Any]:
    """A transaction for anvil_reorg: the node signs it for the unlocked sender."""
    return {"from": sender, "to": contract.address, "data": contract.encode_abi(fn, args=args),
            "gas": hex(3_000_000)}  # fmt: skip


class Follower:
    """An indexer following the chain into a file, recording what the feed hands on."""

    def __init__(self, url: str, path: Path, factory: str, **cfg: Any) -> None:
        self.url, self.path, self.factory, self.cfg = url, path, factory, cfg
        self.changes: list[Change] = []

    async def __aenter__(self) -> Follower:
        self.db = await open_database(self.path)
        store = IndexerStore(self.db)
        await store.setup()
        self.client = ChainClient([self.url], retry=FAST_RETRY)

        async def record(change: Change) -> None:
            self.changes.append(change)

        self.indexer = Indexer(
            self.client, store, config(self.factory, **self.cfg), on_change=record
        )
        await self.settle()
        return self

    async def settle(self) -> None:
        for _ in range(1_000):
            if not await self.indexer.step():
                return
        raise AssertionError("indexer did not settle in 1000 steps")

    async def __aexit__(self, *exc: object) -> None:
        await self.client.close()
        await self.db.close()


def branch_a(chain: Chain, stack: Stack, roles: Roles, s1: Session, depth: int) -> None:
    """`depth` blocks on the branch that will be orphaned: a deposit, a play, a new
    session, then empty blocks."""
    w = s1.wallet
    chain.send(stack.token.functions.approve(w.address, 5 * TOKEN), roles.owner)
    chain.send(w.functions.deposit(5 * TOKEN), roles.owner)  # 2 blocks so far
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
    params = session_params(chain, stack, roles, policy="disciple")
    fee = stack.factory.functions.feeFor(params["deposit"]).call()
    approve = [stack.factory.address, params["deposit"] + fee]
    create = [as_tuple(params), b"\x77" * 32]
    return [
        [tx(s2.wallet, "close", [int(CloseReason.OWNER)], roles.owner), 0],
        [tx(s1.wallet, "withdraw", [3 * TOKEN], roles.owner), 0],
        [tx(stack.token, "approve", approve, roles.owner2), depth - 1],
        [tx(stack.factory, "createSession", create, roles.owner2), depth - 1],
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
        await f.settle()
        after = rows(f.path)
        reorgs = [c for c in f.changes if c.reorg is not None]
    assert len(reorgs) == 1 and reorgs[0].reorg is not None
    assert reorgs[0].reorg.depth == depth
    fresh = tmp_path / "fresh.sqlite"
    await index_to_head(chain.anvil.url, fresh, config(stack.factory.address))
    assert after == rows(fresh)
    assert after != before
    statuses = {s[0]: s[17] for s in after["sessions"]}
    assert statuses[s2.wallet.address] == "closed"
    assert len(after["sessions"]) == 3


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
        assert not [c for c in f.changes if c.reorg is not None]
