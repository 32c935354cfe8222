"""A node that serves the true headers but whose logs lag, are blank or hold a log the block
never had (alone, and as one of two endpoints or one member of a load balancer): the
indexer never commits a block without its logs, stays before it with an ERROR naming the
block and the endpoint, and once the node answers correctly ends with the same database
as indexing anvil directly."""

from __future__ import annotations

import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from chain import ChainClient, RetryPolicy
from indexer import ChainSettings, Indexer
from indexer.verify import LogsContradictHeader
from tests._chain import Chain
from tests._lying_node import Lie, LyingProxy
from tests._rpc_proxy import Fault, FaultyProxy
from tests.conftest import TOKEN, Roles, Session, Stack, top_up
from tests.indexer._support import FAST_RETRY, config, index_to_head, opened, rows, settle, sizing
from tests.indexer.test_indexing import activity

WINDOW = 24
NEWEST = 10  # the newest blocks the node lies about: inside the window
QUICK = RetryPolicy(initial=0.002, factor=1.5, max_delay=0.02, attempts=60)
CHECKS = {"log_check_retries": 2, "log_check_backoff": 0.01}


def _more(chain: Chain, stack: Stack, roles: Roles, make_session: Callable[..., Session]) -> None:
    """Session events in each of the newest blocks (one transaction per block)."""
    for _ in range(2):
        w = make_session(deposit=100 * TOKEN).wallet
        top_up(chain, stack, w, 5 * TOKEN, roles.owner)
        chain.send(w.functions.withdraw(1 * TOKEN), roles.owner)


@pytest.fixture
async def clean(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> Path:
    """Activity whose newest NEWEST blocks all hold session events, indexed from anvil."""
    activity(fresh_chain, stack, roles, make_session)
    _more(fresh_chain, stack, roles, make_session)
    path = tmp_path / "clean.sqlite"
    await index_to_head(fresh_chain.anvil.url, path, config(stack.factory.address))
    return path


async def stall(follower: Indexer, rounds: int = 200) -> LogsContradictHeader:
    """`step()` until a round ends on a block the node keeps contradicting."""
    for _ in range(rounds):
        try:
            async with contextlib.aclosing(follower.step()) as updates:
                async for _update in updates:
                    pass
        except LogsContradictHeader as exc:
            return exc
        assert not follower.idle, "indexed to the head without noticing the lie"
    raise AssertionError(f"no contradiction in {rounds} rounds")


async def index_until(urls: list[str], path: Path, cfg: ChainSettings, head: int) -> None:
    """Index until the checkpoint reaches `head`: a round whose head came from a member
    behind ends early ("nothing to do"), which is no error."""
    async with opened(path) as store, ChainClient(urls, retry=QUICK) as client:
        assert cfg.factory is not None
        follower = Indexer(client, store, cfg, factory=cfg.factory)
        for _ in range(100):
            if (await follower.sync_to_head()).number >= head:
                return
    raise AssertionError(f"the indexer did not reach block {head}")


def committed_as_clean(path: Path, clean: Path) -> int:
    """The checkpoint, after checking that everything committed up to it is what a clean
    index holds there: no block was committed without its logs."""
    got, want = rows(path), rows(clean)
    ((checkpoint, _),) = got["checkpoint"]
    assert got["events"] == [e for e in want["events"] if e[1] <= checkpoint]
    assert got["ignored"] == [e for e in want["ignored"] if e[1] <= checkpoint]
    return int(checkpoint)


@pytest.mark.parametrize("lie", [Lie.LAG, Lie.BLANK, Lie.FAKE])
async def test_a_node_alone_whose_logs_contradict_its_headers_is_never_believed(
    lie: Lie,
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    clean: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    head = fresh_chain.w3.eth.block_number
    path = tmp_path / "lied.sqlite"
    cfg = config(stack.factory.address, reorg_window=WINDOW, **CHECKS)
    with LyingProxy(fresh_chain.anvil.url) as node:
        node.lie(lie, blocks=NEWEST)
        async with (
            opened(path) as store,
            ChainClient([node.url], retry=FAST_RETRY) as client,
        ):
            follower = Indexer(client, store, cfg, factory=stack.factory.address)
            with caplog.at_level(logging.ERROR, logger="warden.indexer"):
                first = await stall(follower)
                again = await stall(follower)  # the next round asks again, and stays
            assert again.block == first.block
            assert first.block > head - NEWEST  # the first lied-about block with our logs
            assert committed_as_clean(path, clean) == first.block - 1
            assert follower.bloom_mismatches >= 2
            errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
            assert any(f"block {first.block} " in m and "127.0.0.1" in m for m in errors), errors
            assert first.endpoint.startswith("#0 http://127.0.0.1")
            assert node.lies().get("eth_getLogs", 0) > 0

            node.clear()  # the node answers correctly again: everything is indexed
            await settle(follower)
    assert rows(path) == rows(clean)


@pytest.mark.parametrize("lie", [Lie.LAG, Lie.BLANK, Lie.FAKE])
async def test_one_of_two_endpoints_lying_is_outvoted_by_asking_the_other(
    lie: Lie, tmp_path: Path, fresh_chain: Chain, stack: Stack, clean: Path
) -> None:
    path = tmp_path / "pair.sqlite"
    cfg = config(stack.factory.address, reorg_window=WINDOW, **CHECKS)
    with LyingProxy(fresh_chain.anvil.url) as liar, FaultyProxy(fresh_chain.anvil.url) as honest:
        liar.lie(lie, blocks=NEWEST)
        async with (
            opened(path) as store,
            ChainClient([liar.url, honest.url], retry=FAST_RETRY) as client,
        ):
            follower = Indexer(client, store, cfg, factory=stack.factory.address)
            await settle(follower)  # no round fails: the other endpoint settles it
            assert follower.verifier.reasks > 0
            assert follower.bloom_mismatches == 0
        assert liar.lies()
    assert rows(path) == rows(clean)


async def test_a_load_balancer_member_behind_never_moves_the_indexer_past_its_logs(
    tmp_path: Path, fresh_chain: Chain, stack: Stack, clean: Path
) -> None:
    """Half the requests reach a member NEWEST blocks behind, which answers `[]` for logs
    of blocks it lacks: backfill ranges (their end header comes in the same answer) and
    followed blocks (their bloom) both refuse its answers. Several seeds: which requests
    reach it differs."""
    # a window smaller than the lag: the member's gap is seen by backfill ranges too
    cfg = config(stack.factory.address, reorg_window=4, **sizing(3, 8), concurrency=3, **CHECKS)
    head = fresh_chain.w3.eth.block_number
    lied: Counter[str] = Counter()
    for seed in range(1, 5):
        path = tmp_path / f"balanced-{seed}.sqlite"
        with LyingProxy(fresh_chain.anvil.url, seed=seed) as balancer:
            balancer.lie(Lie.BEHIND, blocks=NEWEST, share=0.5)
            await index_until([balancer.url], path, cfg, head)
            lied.update(balancer.lies())
        assert rows(path) == rows(clean), seed
    assert lied["eth_getLogs"] > 0, lied


async def test_two_endpoints_one_behind_never_move_the_indexer_past_its_logs(
    tmp_path: Path, fresh_chain: Chain, stack: Stack, clean: Path
) -> None:
    """Failures make the client switch between an honest endpoint and one NEWEST blocks
    behind; a range is committed only with its end header from the same answer."""
    cfg = config(stack.factory.address, reorg_window=4, **sizing(3, 8), concurrency=3, **CHECKS)
    head = fresh_chain.w3.eth.block_number
    lied: Counter[str] = Counter()
    for seed in range(1, 5):
        path = tmp_path / f"switching-{seed}.sqlite"
        with (
            LyingProxy(fresh_chain.anvil.url, seed=seed) as behind,
            FaultyProxy(fresh_chain.anvil.url, seed=seed) as honest,
        ):
            behind.lie(Lie.BEHIND, blocks=NEWEST, share=0.7)
            behind.set_faults(rate=1.0, kinds=[Fault.HTTP_503])  # the other 30 %: fail over
            honest.set_faults(rate=0.6, kinds=[Fault.HTTP_503])  # and back
            await index_until([honest.url, behind.url], path, cfg, head)
            lied.update(behind.lies())
        assert rows(path) == rows(clean), seed
    assert lied["eth_getLogs"] > 0, lied
