"""The indexer behind a fault-injecting JSON-RPC proxy: it retries, rejects wrong
answers, splits refused log ranges, and ends with the same database as a clean run."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chain import ChainClient, RetryPolicy
from tests._chain import Chain
from tests._rpc_proxy import Fault, FaultyProxy
from tests.conftest import Roles, Session, Stack
from tests.indexer._support import (
    FAST_RETRY,
    config,
    index_to_head,
    indexer,
    opened,
    rows,
    sizing,
)
from tests.indexer.test_indexing import activity

PATIENT = RetryPolicy(initial=0.01, factor=1.5, max_delay=0.1, attempts=60)
# Per-request client timeout. A request answered normally must never trip it, even on a
# busy machine where a batch of headers through the proxy can take a second or more (1 s
# flaked there); an injected DELAY in the every-kind test is made twice as long, so it
# always does.
TIMEOUT = 3.0


@pytest.fixture
async def clean(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> Path:
    """Some session activity, indexed straight from anvil: what every faulty run must equal."""
    activity(fresh_chain, stack, roles, make_session)
    path = tmp_path / "clean.sqlite"
    await index_to_head(fresh_chain.anvil.url, path, config(stack.factory.address))
    return path


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_faults_end_in_the_same_database(
    seed: int,
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    clean: Path,
) -> None:
    activity(fresh_chain, stack, roles, make_session)  # more than `clean` holds
    await index_to_head(fresh_chain.anvil.url, clean, config(stack.factory.address))
    with FaultyProxy(fresh_chain.anvil.url, seed=seed, delay=(0.05, 0.3)) as proxy:
        proxy.set_faults(rate=0.3)
        faulty = tmp_path / "faulty.sqlite"
        # Small ranges and a small window: many requests, through backfill and following.
        cfg = config(stack.factory.address, reorg_window=6, **sizing(2, 3), concurrency=3)
        await index_to_head(proxy.url, faulty, cfg, retry=PATIENT, timeout=TIMEOUT)
        stats = proxy.stats()
    assert stats["faults_total"] >= 5, stats
    assert rows(faulty) == rows(clean)


async def test_every_fault_kind_is_survived(
    tmp_path: Path, fresh_chain: Chain, stack: Stack, clean: Path
) -> None:
    with FaultyProxy(fresh_chain.anvil.url, seed=7, delay=(2 * TIMEOUT, 2 * TIMEOUT)) as proxy:
        for kind in Fault:
            proxy.inject(kind, count=2)
        faulty = tmp_path / "faulty.sqlite"
        cfg = config(stack.factory.address, reorg_window=6, **sizing(4, 16))
        await index_to_head(proxy.url, faulty, cfg, retry=PATIENT, timeout=TIMEOUT)
        stats = proxy.stats()
    seen = set(stats["faults"])
    assert {
        "drop",
        "delay",
        "http_429",
        "http_500",
        "truncated",
        "rpc_error",
        "wrong_range",
    } <= seen, stats
    assert rows(faulty) == rows(clean)


async def test_provider_log_limits_make_ranges_shrink(
    tmp_path: Path, fresh_chain: Chain, stack: Stack, clean: Path
) -> None:
    with FaultyProxy(fresh_chain.anvil.url) as proxy:
        proxy.limit_logs(max_range=3, max_results=4)
        limited = tmp_path / "limited.sqlite"
        cfg = config(stack.factory.address, reorg_window=2, **sizing(1_000))
        indexer = await index_to_head(proxy.url, limited, cfg, retry=FAST_RETRY)
        refused = proxy.stats()["faults"].get("log_range_limit", 0)
    assert refused > 0
    assert indexer.fetcher.splits > 0
    assert indexer.fetcher.size <= 8  # it learned the provider's limit
    assert rows(limited) == rows(clean)


async def test_failover_to_the_second_endpoint(
    tmp_path: Path, fresh_chain: Chain, stack: Stack, clean: Path
) -> None:
    with FaultyProxy(fresh_chain.anvil.url) as down:
        down.set_faults(rate=1.0, kinds=[Fault.HTTP_503])
        async with (
            opened(tmp_path / "failover.sqlite") as store,
            ChainClient([down.url, fresh_chain.anvil.url], retry=FAST_RETRY) as client,
        ):
            await indexer(client, store, stack.factory.address).sync_to_head()
            assert client.url == fresh_chain.anvil.url
            assert client.stats.failovers >= 1
    assert rows(tmp_path / "failover.sqlite") == rows(clean)
