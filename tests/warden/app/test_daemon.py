"""The daemon in-process against the shared anvil: indexer → rules → executor closes a
session below its stop-loss, the API shows it over real HTTP, a restart changes nothing,
and a stop shuts down in order."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from database import open_database
from executor import ExecutorSettings, Signer
from indexer import ChainSettings
from tests._chain import Chain, CloseReason
from tests.conftest import TOKEN, Roles, Session, Stack
from tests.executor._support import RELAYER_KEY, table
from warden.app.daemon import Daemon
from warden.app.settings import ApiConfig, DatabaseUrl, RulesConfig, WardenConfig
from warden.app.settings.models import LeadershipConfig
from warden.app.target import Target
from warden.devnet import Anvil, free_port

ROOT = Path(__file__).resolve().parents[3]


def plan(
    anvil: Anvil, stack: Stack, db: Path, start: int, port: int
) -> tuple[WardenConfig, Target]:
    factory = stack.factory.address
    chain = ChainSettings(
        rpc=[anvil.url], chain_id=31337, factory=factory, start_block=start, reorg_window=16,
        poll_interval=0.1,
    )  # fmt: skip
    cfg = WardenConfig(
        chain=chain,
        database=db,
        rules=RulesConfig(files=[ROOT / "config/rules"]),
        executor=ExecutorSettings(
            min_relayer_balance=10**16, replace_after_blocks=2, dry_run=False
        ),
        api=ApiConfig(port=port),
    )
    signer = Signer.from_raw_key(RELAYER_KEY, chain_id=31337)
    return cfg, Target((anvil.url,), factory, 31337, signer, None)


@contextlib.asynccontextmanager
async def running(
    p: tuple[WardenConfig, Target],
) -> AsyncIterator[tuple[Daemon, asyncio.Task[int]]]:
    daemon = Daemon(*p)
    task = asyncio.create_task(daemon.run())
    try:
        yield daemon, task
    finally:
        if not task.done():
            daemon.request_stop()
            await asyncio.wait_for(task, 30)


async def until(predicate: Callable[[], Any], timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.1)


async def get(port: int, path: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status, await r.json(content_type=None)


async def test_stop_loss_closed_by_the_daemon_visible_in_the_api_restart_changes_nothing(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    start = fresh_chain.w3.eth.block_number + 1
    db = tmp_path / "warden.db"
    port = free_port()
    session = make_session()
    wallet = session.wallet.address
    owner_before = fresh_chain.balance(stack.token, roles.owner)
    p = plan(anvil, stack, db, start, port)
    caplog.set_level(logging.INFO)
    async with running(p) as (daemon, task):

        async def ready() -> bool:
            with contextlib.suppress(aiohttp.ClientError):
                return (await get(port, "/ready"))[0] == 200
            return False

        await until(ready)
        fresh_chain.send(session.wallet.functions.withdraw(850 * TOKEN), roles.owner)

        async def confirmed() -> bool:
            rows = table(db, "SELECT state FROM intents WHERE wallet = ?", wallet)
            return rows == [("confirmed",)]

        await until(confirmed)
        status, body = await get(port, f"/sessions/{wallet}")
        assert status == 200
        assert body["session"]["status"] == "closed"
        assert body["session"]["close_reason"] == "stop_loss"
        assert [(i["rule"], i["state"]) for i in body["intents"]] == [
            ("berzerker-stop-loss", "confirmed")
        ]
        status, st = await get(port, "/status")
        assert st["intents"]["confirmed"] == 1
        assert st["relayer"]["address"] == roles.operator
    assert task.result() == 0
    assert fresh_chain.balance(stack.token, roles.owner) - owner_before == 1_000 * TOKEN
    messages = "\n".join(caplog.messages)
    assert messages.index("HTTP stopped") < messages.index("intake stopped")
    assert messages.index("intake stopped") < messages.index("database closed")

    before = table(db, "SELECT key, state, job_id FROM intents")
    jobs = table(db, "SELECT id, state FROM jobs")
    async with running(plan(anvil, stack, db, start, free_port())) as (daemon, _):
        await until(lambda: _ready_again(daemon))
        # Several more steps of the restarted daemon (each polls the node at least once),
        # counted rather than slept through: on a busy machine 0.6 s may be no step at all.
        seen = daemon.live.rpc.requests

        async def stepped() -> bool:
            return daemon.live.rpc.requests >= seen + 5

        await until(stepped)
    assert table(db, "SELECT key, state, job_id FROM intents") == before
    assert table(db, "SELECT id, state FROM jobs") == jobs
    assert _closed_reason(session) == CloseReason.STOP_LOSS


async def _ready_again(daemon: Daemon) -> bool:
    return daemon.live.caught_up


def _closed_reason(session: Session) -> int:
    (log,) = session.wallet.events.Closed().get_logs(from_block=session.receipt["blockNumber"])
    return int(log["args"]["reason"])


async def test_a_stop_while_the_api_starts_ends_cleanly(
    anvil: Anvil,
    fresh_chain: Chain,
    stack: Stack,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGTERM right after "warden running", while the HTTP runner is still being set up
    (seen in CI): the stop waits for the start, cleans the runner up and the run ends 0,
    never with an AttributeError from a runner the stop already took away."""
    daemon: Daemon | None = None
    original = web.AppRunner.setup

    async def setup_then_stop(self: web.AppRunner) -> None:
        assert daemon is not None
        daemon.request_stop()
        await asyncio.sleep(0)  # the stopper runs now, in the middle of the start
        await original(self)

    monkeypatch.setattr(web.AppRunner, "setup", setup_then_stop)
    port = free_port()
    p = plan(anvil, stack, tmp_path / "w.db", fresh_chain.w3.eth.block_number + 1, port)
    daemon = Daemon(*p)
    assert await asyncio.wait_for(daemon.run(), 60) == 0
    with pytest.raises(aiohttp.ClientConnectionError):  # nothing left listening
        await get(port, "/ready")


async def test_a_leader_deposed_mid_step_stands_by_whatever_the_step_then_raises(
    anvil: Anvil, stack: Stack, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On PostgreSQL, a leader whose lease is taken over while a step runs reads, for the
    rest of that step, rows the new leader writes: its indexer can find a session
    "created twice" or sequence gaps. It must stand by, not crash: the step is cut short
    at the step-down, and whatever a replica that lost its lease raises is a deposal."""
    from indexer import Indexer
    from indexer.projection import ProjectionError

    taken = asyncio.Event()
    real_advance = Indexer.advance

    async def advance(self: Indexer) -> Any:
        if taken.is_set():  # the new leader's rows, read by the deposed one
            await asyncio.sleep(1.0)
            raise ProjectionError("0xdead created twice (position 1)")
        async for update in real_advance(self):
            yield update

    monkeypatch.setattr(Indexer, "advance", advance)
    cfg, target = plan(anvil, stack, Path("unused"), anvil_block(anvil), free_port())
    cfg = cfg.model_copy(
        update={
            "database": DatabaseUrl(pg_dsn),
            "leadership": LeadershipConfig(identity="a", ttl=1.5, margin=0.4),
        }
    )
    async with running((cfg, target)) as (daemon, task):

        async def leads() -> bool:
            lead = daemon.live.leadership
            return lead is not None and lead.role == "leader" and lead.epoch == 1

        await until(leads)
        taken.set()
        db = await open_database(pg_dsn)
        try:  # another replica takes over
            await db.execute(
                "UPDATE leader SET holder = 'b', epoch = epoch + 1, expires_ms = ? WHERE id = 1",
                (2**62,),
            )
        finally:
            await db.close()

        async def stands_by() -> bool:
            lead = daemon.live.leadership
            return task.done() or (lead is not None and lead.role == "standby")

        await until(stands_by)
        await asyncio.sleep(1.5)  # the step it was in has ended by now, one way or another
        assert not task.done(), task.result()
        assert daemon.live.leadership is not None
        assert daemon.live.leadership.role == "standby"
    assert task.result() == 0


def anvil_block(anvil: Anvil) -> int:
    return int(Chain(anvil).w3.eth.block_number) + 1
