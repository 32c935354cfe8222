"""The error budget behind /ready: the daemon in-process over real HTTP, its node failing
— a proxy in front of the shared anvil dropping every request, or an anvil of its own
frozen with SIGSTOP — turns /ready to 503 with the reason once the node has failed for
longer than `chain.max_failure_seconds`, shows the streak in /metrics, and turns 200
again when the node answers."""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from indexer.failures import FailureStreak, describe
from tests._chain import Chain
from tests._rpc_proxy import Fault, FaultyProxy
from tests.conftest import Stack, build_stack, make_roles
from tests.warden.app.test_daemon import plan, running, until
from warden.app.api import LiveState
from warden.app.settings import WardenConfig
from warden.app.target import Target
from warden.devnet import Anvil, free_port

BUDGET = 1.0  # chain.max_failure_seconds in these tests


def failing_fast(cfg: WardenConfig, target: Target, rpc: str) -> tuple[WardenConfig, Target]:
    """The plan against `rpc`, with a small error budget and a client that gives up fast
    (the budget does not depend on it: see the SIGSTOP test's long timeout)."""
    chain = cfg.chain.model_copy(update={
        "rpc": [rpc], "retry_initial": 0.05, "retry_attempts": 2, "timeout": 2.0,
        "max_failure_seconds": BUDGET,
    })  # fmt: skip
    return cfg.model_copy(update={"chain": chain}), replace(target, rpc=(rpc,))


async def fetch(port: int, path: str) -> tuple[int, str]:
    with contextlib.suppress(aiohttp.ClientError):
        async with (
            aiohttp.ClientSession() as http,
            http.get(
                f"http://127.0.0.1:{port}{path}", timeout=aiohttp.ClientTimeout(total=10)
            ) as r,
        ):
            return r.status, await r.text()
    return 0, ""


def sample(metrics: str, name: str, loop: str | None = None) -> float:
    label = "" if loop is None else f'{{loop="{loop}"}}'
    match = re.search(rf"^{re.escape(name + label)} (\S+)$", metrics, re.M)
    assert match, f"{name}{label} not in /metrics"
    return float(match.group(1))


async def ready_is(port: int, status: int, *needles: str) -> bool:
    got, body = await fetch(port, "/ready")
    return got == status and all(n in body for n in needles)


async def test_ready_503_while_the_proxy_drops_everything_then_200(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, tmp_path: Path
) -> None:
    start = fresh_chain.w3.eth.block_number  # a block to index: a checkpoint, then ready
    port = free_port()
    with FaultyProxy(anvil.url, max_log_range=None, max_log_results=None) as proxy:
        p = failing_fast(*plan(anvil, stack, tmp_path / "w.sqlite", start, port), proxy.url)
        async with running(p) as (daemon, task):
            await until(lambda: ready_is(port, 200))
            proxy.set_faults(rate=1.0, kinds=[Fault.DROP])
            await until(lambda: ready_is(port, 503, "node failing", "indexer", "consecutive"))
            _, body = await fetch(port, "/ready")
            assert "max_failure_seconds" in body and proxy.url not in body, body
            _, metrics = await fetch(port, "/metrics")
            assert sample(metrics, "warden_rpc_consecutive_failures", "indexer") >= 1
            assert sample(metrics, "warden_rpc_failing_seconds", "indexer") > BUDGET
            assert sample(metrics, "warden_node_down") == 1
            assert daemon.live.over_budget() is not None

            proxy.set_faults(rate=0.0)
            await until(lambda: ready_is(port, 200, '"ready":true'))
            _, metrics = await fetch(port, "/metrics")
            assert sample(metrics, "warden_rpc_consecutive_failures", "indexer") == 0
            assert sample(metrics, "warden_rpc_loop_failures_total", "indexer") >= 1
            assert sample(metrics, "warden_node_down") == 0
    assert task.result() == 0


@contextlib.contextmanager
def frozen(node: Anvil) -> Iterator[None]:
    """The node process stopped (SIGSTOP): connections are accepted by the kernel and
    never answered, the worst case for a client's timeouts. Always resumed."""
    proc: Any = node._proc  # the process handle; Anvil exposes no pid
    assert proc is not None
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(proc.pid, signal.SIGCONT)


async def test_ready_503_while_the_node_is_stopped_then_200_when_it_resumes(
    tmp_path: Path,
) -> None:
    """With the client's own patience far beyond the budget (30 s per request, 10
    attempts), /ready still turns 503 after the budget: an attempt that has not answered
    counts from its start."""
    with Anvil() as node:
        chain = Chain(node)
        roles = make_roles(chain)
        stack = build_stack(chain, roles)
        start = chain.w3.eth.block_number
        port = free_port()
        cfg, target = plan(node, stack, tmp_path / "w.sqlite", start, port)
        chain_cfg = cfg.chain.model_copy(update={"max_failure_seconds": BUDGET})
        async with running((cfg.model_copy(update={"chain": chain_cfg}), target)) as (d, task):
            await until(lambda: ready_is(port, 200))
            with frozen(node):
                await until(lambda: ready_is(port, 503, "node failing", "no answer"))
            await until(lambda: ready_is(port, 200), timeout=120)
            assert d.live.over_budget() is None
        assert task.result() == 0


def test_streak_counts_from_the_first_failed_attempts_start_and_resets_on_success() -> None:
    s = FailureStreak()
    assert s.failing_for(100.0) is None
    s.begin(10.0)
    assert s.failing_for(12.0) == 2.0  # in progress, no answer yet
    s.failed(ConnectionError("refused"), now=40.0)
    s.begin(41.0)
    s.failed(ConnectionError("refused"), now=45.0)
    assert (s.consecutive, s.total, s.failing_for(50.0)) == (2, 2, 40.0)
    s.begin(51.0)
    s.succeeded()
    assert (s.consecutive, s.total, s.failing_for(60.0)) == (0, 2, None)
    s.begin(61.0)
    s.end()  # left without a verdict
    assert s.failing_for(99.0) is None


def test_over_budget_names_the_loop_and_keeps_urls_out() -> None:
    live = LiveState(max_failure_seconds=5.0)
    streak = FailureStreak()
    live.failures = {"indexer": streak, "executor": FailureStreak()}
    streak.begin(0.0)
    streak.failed(OSError("https://eth.example/v2/SECRETKEY refused"), now=1.0)
    assert live.over_budget(4.0) is None
    reason = live.over_budget(6.0)
    assert reason is not None and reason.startswith("indexer: failing for 6 s"), reason
    assert "SECRETKEY" not in reason and "<url>" in reason
    assert describe(ValueError("x" * 500)).endswith("...")


@pytest.mark.parametrize("value", [0, -1, "soon", True])
def test_max_failure_seconds_must_be_positive_seconds(value: object) -> None:
    from indexer import ChainSettings

    with pytest.raises(ValueError, match="seconds"):
        ChainSettings.model_validate({"max_failure_seconds": value})
