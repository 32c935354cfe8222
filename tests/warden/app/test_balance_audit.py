"""The balance audit as `alert.balance_drift` on a real anvil: a plain token transfer into
a session wallet raises one alert for that wallet (exact decimal strings, stable id,
logged and owed to the channel), a later `sync()` clears it, a close clears it, a
restarted leader clears what its predecessor raised; a top-up in a block not yet indexed
makes no drift (the audit asks at the indexed block); a token whose `balanceOf` reverts,
answers short or long data or lies is reported, never crashes a step; a node that fails
the whole request or a page gives the pass up and the next one retries; the daemon runs
it by itself (tests/warden/app/test_daemon_audit.py). The first test runs on both stores."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from web3.contract import Contract

from chain import ChainClient, ProviderError, RpcUnavailable
from database import Database, open_database
from indexer import Indexer, IndexerStore
from notify import EventLog, NotifySettings, Route, Router
from notify.outbox import Deliveries
from tests._chain import Chain
from tests.conftest import TOKEN, Roles, Session, Stack, top_up
from tests.indexer._support import FAST_RETRY, config
from warden.app.audit import BalanceAudit, read_balance
from warden.app.settings.models import AuditConfig

OWNER_CLOSE = 0  # CloseReason.Owner
KIND = "alert.balance_drift"


@dataclass
class World:
    db: Database
    log: EventLog
    store: IndexerStore
    client: ChainClient
    indexer: Indexer
    now: list[float]
    router: Router  # the channel `ops`, placed before anything is logged

    def audit(self, page: int = 1, client: Any = None) -> BalanceAudit:
        return BalanceAudit(
            client or self.client, self.store, self.log, AuditConfig(interval=600, page=page),
            clock=lambda: self.now[0],
        )  # fmt: skip

    async def index(self) -> None:
        await self.indexer.sync_to_head()

    async def run_pass(self, audit: BalanceAudit, steps: int = 1_000) -> None:
        """Time moves on to the next pass; steps until it ends (or is given up)."""
        self.now[0] += 600
        passes, failures = audit.passes, audit.failures
        for _ in range(steps):
            await audit.step(await self.store.checkpoint())
            if audit.passes > passes or audit.failures > failures:
                return
        raise AssertionError("the pass did not end")

    async def drifts(self) -> list[dict[str, Any]]:
        rows = await self.db.fetch(
            "SELECT event_id, body FROM notify_events WHERE kind = ? ORDER BY id", (KIND,)
        )
        return [{"id": r[0], **orjson.loads(r[1])} for r in rows]


@contextlib.asynccontextmanager
async def world(
    tmp_path: Path, chain: Chain, stack: Stack, target: str | None = None
) -> AsyncIterator[World]:
    db = await open_database(target or str(tmp_path / "w.sqlite"))
    try:
        hook = {"name": "ops", "type": "command", "command": ["/bin/true"], "kinds": ["alert"]}
        cfg = NotifySettings.model_validate({"channels": [hook]})
        log = EventLog(db)
        await log.setup()
        router = Router(db, [Route("ops", cfg.channels[0])])
        await router.start()
        store = IndexerStore(db, hooks=log)
        await store.setup()
        async with ChainClient([chain.anvil.url], retry=FAST_RETRY) as client:
            factory = stack.factory.address
            indexer = Indexer(client, store, config(factory), factory=factory)
            yield World(db, log, store, client, indexer, [0.0], router)
    finally:
        await db.close()


async def test_a_plain_transfer_raises_one_drift_a_sync_or_a_close_clears_it(
    backend: str,
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    a, b, c = make_session(), make_session(), make_session()
    big = 2**255 + 7  # exact beyond any float
    chain.send(stack.token.functions.mint(roles.owner2, big), roles.deployer)
    chain.send(stack.token.functions.transfer(a.wallet.address, big), roles.owner2)
    chain.send(stack.token.functions.transfer(c.wallet.address, 5), roles.owner2)
    async with world(tmp_path, chain, stack, backend) as w:
        await w.index()
        audit = w.audit(page=1)  # one session per step: a pass is several steps
        await w.run_pass(audit)
        cp = await w.store.checkpoint()
        assert cp is not None
        at = cp.number
        indexed = (await w.store.session(a.wallet.address)).balance  # type: ignore[union-attr]
        raised = await w.drifts()
        await w.run_pass(audit)  # still drifting: nothing new
        assert await w.drifts() == raised
        # a top-up in a block the index has not reached: no drift (asked at the index's)
        top_up(chain, stack, b.wallet, 10 * TOKEN, roles.owner)
        await w.run_pass(audit)
        assert await w.drifts() == raised
        # the next leader (a restart) clears what this one raised
        chain.send(a.wallet.functions.sync(), roles.stranger)
        chain.send(c.wallet.functions.close(OWNER_CLOSE), roles.owner)
        await w.index()
        successor = w.audit(page=2)
        await successor.restore()
        assert set(successor.active) == {a.wallet.address, c.wallet.address}
        await w.run_pass(successor)
        after = await w.drifts()
        await w.router.drain()
        owed = [d.kind for d in await Deliveries(w.db).page(0, 100)]

    assert [d["data"]["wallet"] for d in raised] == [a.wallet.address, c.wallet.address]
    first = raised[0]
    assert first["id"] == f"{KIND}:{a.wallet.address}:{at}:{cp.hash[:10]}"
    assert first["session"]["wallet"] == a.wallet.address
    assert first["data"] == {
        "state": "raised", "wallet": a.wallet.address, "token": stack.token.address,
        "block": at, "indexed": str(indexed), "on_chain": str(indexed + big),
        "difference": str(big), "problem": None,
    }  # fmt: skip
    assert raised[1]["data"]["difference"] == "5"
    cleared = after[2:]
    assert [(d["id"], d["data"]["reason"]) for d in cleared] == [
        (f"{first['id']}/cleared", "in line"), (f"{raised[1]['id']}/cleared", "closed"),
    ]  # fmt: skip
    # in line again: what the index says is what the token says (sync() took its fee)
    assert cleared[0]["data"]["on_chain"] == cleared[0]["data"]["indexed"]
    assert int(cleared[0]["data"]["indexed"]) > indexed
    assert owed == [KIND] * 4  # each raise and clear owed to the alert channel


# runtime code put on the token: each answers `balanceOf` (anything) its own way
REVERTS = "0x60006000fd"  # revert(0, 0)
SHORT = "0x60056000f3"  # return 5 bytes
LONG = "0x60406000f3"  # return 64 bytes
INVALID = "0xfe"  # an invalid opcode: all the gas burnt
LIES = "0x7f" + "ff" * 32 + "60005260206000f3"  # 2**256 - 1 for everyone


async def test_a_hostile_balance_of_is_reported_and_never_crashes_a_step(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    hostile_token: Contract,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    s = make_session(token=hostile_token.address)
    honest = "0x" + bytes(chain.w3.eth.get_code(hostile_token.address)).hex()
    wallet = s.wallet.address

    def behave(code: str) -> None:
        chain.w3.provider.make_request("anvil_setCode", [hostile_token.address, code])  # type: ignore[arg-type]
        chain.mine()  # the audit asks at the indexed block: index one with this code

    seen: list[tuple[str, Any, Any]] = []
    async with world(tmp_path, chain, stack) as w:
        audit = w.audit(page=10)
        for code in (REVERTS, honest, SHORT, honest, LONG, honest, LIES, honest, INVALID,
                     honest):  # fmt: skip
            behave(code)
            await w.index()
            await w.run_pass(audit)
            last = (await w.drifts() or [{"data": {}}])[-1]["data"]
            seen.append((last.get("state"), last.get("on_chain"), last.get("problem")))
        balance = (await w.store.session(wallet)).balance  # type: ignore[union-attr]
    assert seen[:8] == [
        ("raised", None, "balanceOf reverted"), ("cleared", str(balance), None),
        ("raised", None, "balanceOf answered 5 bytes, not one 32-byte word"), seen[1],
        ("raised", None, "balanceOf answered 64 bytes, not one 32-byte word"), seen[1],
        ("raised", str(2**256 - 1), None), seen[1],
    ]  # fmt: skip
    # an invalid opcode (all the gas burnt): the token failed, not the node
    assert seen[8][:2] == ("raised", None) and str(seen[8][2]).startswith("balanceOf failed")
    assert seen[9] == seen[1]
    assert audit.active == {}


def test_read_balance_takes_exactly_one_word() -> None:
    assert read_balance("0x" + "00" * 31 + "2a").amount == 42
    assert read_balance("0x" + "ff" * 32).amount == 2**256 - 1
    for bad in ("0x", "0x2a", "0x" + "00" * 33, "0x" + "zz" * 32, None, 42, "", "00" * 32):
        r = read_balance(bad)
        assert r.amount is None and r.problem, bad


class Flaky:
    """The real client, with the failures a node can have on demand."""

    def __init__(self, real: ChainClient) -> None:
        self.real = real
        self.plan: list[str] = []  # per batch: ok, down, refuse-all, refuse-one, garbage
        self.batches = 0

    async def batch_each(
        self, calls: Sequence[tuple[str, list[Any]]], *, transient_in_place: bool = False
    ) -> list[Any]:
        self.batches += 1
        what = self.plan.pop(0) if self.plan else "ok"
        if what == "down":
            raise RpcUnavailable("connection refused (after the client's retries)")
        answers = await self.real.batch_each(calls, transient_in_place=transient_in_place)
        if what == "refuse-all":
            return [ProviderError("eth_call: header not found", -32000) for _ in answers]
        if what == "garbage":  # a lying node: `0x` to every call
            return ["0x" for _ in answers]
        if what == "refuse-one":
            return [ProviderError("eth_call: internal error", -32603), *answers[1:]]
        return answers


async def test_a_failing_node_gives_the_pass_up_and_the_next_retries(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    a, b = make_session(), make_session()
    for s in (a, b):
        chain.send(stack.token.functions.transfer(s.wallet.address, 3), roles.owner)
    async with world(tmp_path, chain, stack) as w:
        await w.index()
        flaky = Flaky(w.client)
        audit = w.audit(page=1, client=flaky)
        flaky.plan = ["ok", "down"]  # the node goes away mid-pass
        await w.run_pass(audit)  # never raises
        assert (audit.failures, audit.passes) == (1, 0)
        assert [d["data"]["wallet"] for d in await w.drifts()] == [a.wallet.address]
        # given up: nothing more until the interval has passed
        assert not await audit.step(await w.store.checkpoint())
        assert audit.current is None
        flaky.plan = ["refuse-all"]  # every call refused: the node, not the tokens
        await w.run_pass(audit)
        assert audit.failures == 2
        audit.settings = AuditConfig(interval=600, page=2)
        flaky.plan = ["refuse-one"]  # one call refused: that wallet waits, b is judged
        await w.run_pass(audit)
        assert audit.passes == 1
        await w.run_pass(audit)  # and the next pass judges a again (already raised)
        drifts = await w.drifts()
    assert [d["data"]["wallet"] for d in drifts] == [a.wallet.address, b.wallet.address]
    assert audit.passes == 2 and set(audit.active) == {a.wallet.address, b.wallet.address}


async def test_a_node_answering_garbage_for_several_tokens_raises_nothing(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    hostile_token: Contract,
    make_session: Callable[..., Session],
) -> None:
    make_session()
    make_session(token=hostile_token.address)
    async with world(tmp_path, fresh_chain, stack) as w:
        await w.index()
        flaky = Flaky(w.client)
        audit = w.audit(page=10, client=flaky)
        flaky.plan = ["garbage"]
        await w.run_pass(audit)
        assert (audit.failures, await w.drifts()) == (1, [])
        await w.run_pass(audit)  # the node is honest again: both in line
        assert (audit.passes, await w.drifts(), audit.active) == (1, [], {})


async def test_an_audit_turned_off_does_nothing(
    tmp_path: Path, fresh_chain: Chain, stack: Stack, make_session: Callable[..., Session]
) -> None:
    make_session()
    async with world(tmp_path, fresh_chain, stack) as w:
        await w.index()
        off = BalanceAudit(w.client, w.store, w.log, AuditConfig(interval=0))
        assert not await off.step(await w.store.checkpoint())
        assert off.current is None and off.passes == 0


@pytest.mark.parametrize("interval", [0, 5, 700_000])
def test_audit_settings_are_checked_at_their_line(tmp_path: Path, interval: int) -> None:
    from warden.app.settings import ConfigError, load_config

    (tmp_path / "rules").mkdir()
    path = tmp_path / "warden.yaml"
    path.write_text(f"audit:\n  interval: {interval}\n  page: 0\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    problems = "\n".join(caught.value.problems)
    assert f"{path}:3: audit.page" in problems
    assert (f"{path}:2: audit.interval" in problems) == (interval != 0)
