"""Indexing a real anvil chain: sessions rebuilt from their logs, look-alikes ignored,
backfill in ranges equal to following block by block."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from chain import ChainClient
from tests._chain import Chain, CloseReason
from tests._workload import Workload
from tests.conftest import FEE_BPS, TOKEN, Roles, Session, Stack, top_up
from tests.indexer._support import (
    FAST_RETRY,
    config,
    index_to_head,
    indexer,
    opened,
    rows,
    settle,
    sizing,
)


def activity(
    chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]
) -> list[str]:
    """A few sessions through most of their lifecycle, and some spoofed logs."""
    a = make_session(policy="berzerker")
    b = make_session(owner=roles.owner2, policy="merchant", stopLoss=0)
    c = make_session(policy="")
    w = a.wallet
    top_up(chain, stack, w, 50 * TOKEN, roles.owner)
    chain.send(stack.game.functions.setOutcome(False, 0), roles.deployer)
    play = stack.game.encode_abi("play", args=[100 * TOKEN])
    chain.send(w.functions.execute(stack.game.address, play, 100 * TOKEN), roles.operator)
    chain.send(stack.game.functions.setOutcome(True, 30_000), roles.deployer)
    chain.send(w.functions.execute(stack.game.address, play, 100 * TOKEN), roles.operator)
    chain.send(w.functions.withdraw(10 * TOKEN), roles.owner)
    chain.send(w.functions.extend(chain.now() + 200_000), roles.owner)
    chain.send(b.wallet.functions.revoke(), roles.owner2)
    chain.send(stack.token.functions.transfer(c.wallet.address, 7 * TOKEN), roles.owner)
    chain.send(c.wallet.functions.sync(), roles.stranger)
    chain.send(c.wallet.functions.close(int(CloseReason.STOP_LOSS)), roles.operator)
    chain.mine()
    look = stack.lookalike
    chain.send(look.functions.fakeDeposited(1, roles.owner, 5, 5), roles.stranger)
    chain.send(look.functions.fakeClosed(1, int(CloseReason.OWNER), 5), roles.stranger)
    chain.send(
        look.functions.fakeSessionCreated(
            look.address, roles.owner, roles.operator, stack.token.address
        ),
        roles.stranger,
    )
    return [a.wallet.address, b.wallet.address, c.wallet.address]


async def test_sessions_are_rebuilt_from_their_logs(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    a, b, c = activity(fresh_chain, stack, roles, make_session)
    db_path = tmp_path / "w.sqlite"
    await index_to_head(fresh_chain.anvil.url, db_path, config(stack.factory.address))
    async with opened(db_path) as store:
        s = await store.sessions([a, b, c])
        assert s[a].balance == fresh_chain.balance(stack.token, a)
        assert s[a].deposit == 1_050 * TOKEN
        assert s[a].withdrawn == 10 * TOKEN
        assert s[a].execution_count == 2
        assert s[a].spent == 100 * TOKEN  # a win spends nothing: spend is the balance drop
        assert s[a].last_seq == 5 and s[a].seq_gaps == 0
        assert s[a].status == "active" and s[a].policy == "berzerker"
        assert s[b].status == "revoked" and s[b].stop_loss == 0
        assert s[c].status == "closed" and s[c].close_reason == "stop_loss"
        # the plain transfer of 7 paid its fee (rounded up) out of itself at the sync
        inflow_fee = -(-7 * TOKEN * FEE_BPS // 10_000)
        assert s[c].refund == 1_007 * TOKEN - inflow_fee and s[c].balance == 0
        assert s[c].fee == 10 * TOKEN + inflow_fee  # the creation's fee, then the inflow's
        assert s[a].fee == 10 * TOKEN + TOKEN // 2  # the creation's, then the top-up's
        assert s[c].closed_by == roles.operator
        assert await store.ignored_count() == 3
        assert len(await store.all_sessions()) == 3


async def test_backfill_in_ranges_equals_following_block_by_block(
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
        await follower.sync_to_head()
        for _ in range(3):
            activity(fresh_chain, stack, roles, make_session)
            await settle(follower)
    backfill_path = tmp_path / "backfill.sqlite"
    cfg = config(stack.factory.address, reorg_window=2, **sizing(3, 8), concurrency=3)
    await index_to_head(fresh_chain.anvil.url, backfill_path, cfg)
    followed, backfilled = rows(follow_path), rows(backfill_path)
    assert len(followed["events"]) >= 39  # 3 x 13 session events, plus admin
    assert followed == backfilled


async def test_random_workload_backfilled_equals_followed_and_the_chain(
    tmp_path: Path, fresh_chain: Chain, stack: Stack, roles: Roles
) -> None:
    """Every kind of wallet action, big amounts, donations and spoofs: following step by
    step, backfilling in small ranges, and the chain's own balances all agree."""
    work = Workload(fresh_chain, stack, roles, random.Random(11), big_amounts=True)
    follow_path = tmp_path / "follow.sqlite"
    async with (
        opened(follow_path) as store,
        ChainClient([fresh_chain.anvil.url], retry=FAST_RETRY) as client,
    ):
        follower = indexer(client, store, stack.factory.address, reorg_window=10_000)
        for _ in range(12):
            work.run(15)
            await settle(follower)
        sessions = {s.wallet: s for s in await store.all_sessions()}
    assert not work.reverts
    assert set(sessions) == set(work.sessions)
    head = fresh_chain.w3.eth.block_number
    for wallet, s in sessions.items():
        if s.status != "closed":
            on_chain = fresh_chain.balance(stack.token, wallet, head)
            # a donation without sync() is on chain but not yet in any event
            assert s.balance <= on_chain, wallet
        assert s.seq_gaps == 0
    assert max(s.initial_deposit for s in sessions.values()) > 2**254
    backfill_path = tmp_path / "backfill.sqlite"
    cfg = config(stack.factory.address, reorg_window=4, **sizing(5, 20), concurrency=3)
    await index_to_head(fresh_chain.anvil.url, backfill_path, cfg)
    assert rows(follow_path) == rows(backfill_path)
