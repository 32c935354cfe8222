"""Batching and isolation against the in-process node of `_fake_node.py` and a real SQLite
file (the same cases with a real HostileToken on anvil: `test_hostile_sessions.py`).

- only sessions of tokens the factory's registry lists now share a batch, and
  `batch_tokens` narrows that; a registry the node will not answer batches nothing;
- a batch member whose close misbehaves (a revert that does not make it obsolete, or out
  of its stipend), in a receipt or in a simulation, is taken out of batching for good,
  with an alert, and sent alone; a close alone that reverts, or needs more gas than
  `single_close_gas_cap`, fails with an alert and is not sent again;
- members a batch did not reach (`BatchIncomplete`) are sent again, not counted.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from eth_abi.abi import decode
from eth_utils.address import to_checksum_address

from executor import Executor, Outbox, Signer, StepReport
from indexer import open_database
from tests.executor._fake_node import CHAIN_ID, TOKEN, FakeNode, FakeStore
from tests.executor._support import RELAYER_KEY, executor_settings, intend, table
from tests.executor.test_tracking import error_selector

FACTORY = to_checksum_address("0x" + "fa" * 20)
OTHER = to_checksum_address("0x" + "71" * 20)  # a token the registry does not list
WALLETS = [to_checksum_address("0x" + f"{i:02x}" * 20) for i in range(0x51, 0x58)]
SWITCHED = "0xf38a38fe" + "00" * 31 + "01"  # HostileToken's Switched(1), unknown here


class Rig:
    """An executor on the fake node and a SQLite file; `running()` may be entered again
    (a restart)."""

    def __init__(self, tmp_path: Path) -> None:
        self.node = FakeNode()
        self.store = FakeStore(self.node)
        self.db_path = tmp_path / "w.db"
        self.settings: dict[str, Any] = {}
        self.now_ms = 1_000_000

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Executor]:
        db = await open_database(self.db_path)
        try:
            async with self.node.client() as client:
                self.outbox = Outbox(db)
                await self.outbox.setup()
                self.executor = Executor(
                    client, self.outbox, self.store,  # type: ignore[arg-type]
                    executor_settings(**self.settings), factory=FACTORY, chain_id=CHAIN_ID,
                    dry_run=False, signer=Signer.from_raw_key(RELAYER_KEY, chain_id=CHAIN_ID),
                    relayer=None, clock_ms=lambda: self.now_ms,
                )  # fmt: skip
                self.executor.tracker.monotonic = lambda: self.now_ms / 1000
                await self.executor.start()
                yield self.executor
        finally:
            await db.close()

    async def intend(self, wallet: str, token: str = TOKEN) -> str:
        if wallet not in self.store.sessions_by_wallet:
            session = self.store.add_session(wallet, operator=self.executor.relayer)
            self.store.sessions_by_wallet[wallet] = replace(session, token=token)
        return await intend(self.outbox, wallet, now=self.node.head.timestamp)

    async def step(self) -> StepReport:
        self.store.sync()
        self.now_ms += 1000
        return await self.executor.step(self.node.head.timestamp)

    async def settle(self, steps: int = 6) -> None:
        for _ in range(steps):
            await self.step()
            self.node.mine()
        await self.step()

    async def state(self, key: str) -> tuple[str, str]:
        row = await self.outbox.intent(key)
        assert row is not None
        return row.state, row.detail or ""

    def sent(self) -> list[tuple[str, frozenset[str]]]:
        """(kind, wallets it closes) of every transaction the node took, in order."""
        out = []
        for tx in self.node.accepted:
            if tx.to == FACTORY.lower():
                body = bytes.fromhex(tx.data[10:])
                wallets, _, _ = decode(["address[]", "uint8[]", "uint256"], body)
                out.append(("batch", frozenset(str(w).lower() for w in wallets)))
            else:
                out.append(("close", frozenset({tx.to})))
        return out

    def alerts(self, kind: str) -> list[str]:
        return [a.message for a in self.executor.protection().alerts if a.kind == kind]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def lower(*wallets: str) -> frozenset[str]:
    return frozenset(w.lower() for w in wallets)


# -- what is batched -------------------------------------------------------------------


async def test_only_tokens_the_registry_lists_are_batched(rig: Rig) -> None:
    a, b, c = WALLETS[:3]
    async with rig.running():
        keys = [await rig.intend(a), await rig.intend(b), await rig.intend(c, token=OTHER)]
        rig.node.listed = {TOKEN}
        await rig.settle()
        assert [(await rig.state(k))[0] for k in keys] == ["confirmed"] * 3
    assert rig.sent() == [("batch", lower(a, b)), ("close", lower(c))]
    assert rig.node.registry_asked == 2  # both tokens, in one step


async def test_a_delisted_token_is_closed_alone_from_the_next_question(rig: Rig) -> None:
    async with rig.running() as ex:
        ex.submitter.batcher.registry.ttl_ms = 0
        for w in WALLETS[:2]:
            await rig.intend(w)
        rig.node.listed = set()  # de-listed after the sessions were opened
        await rig.settle()
    assert sorted(kind for kind, _ in rig.sent()) == ["close", "close"]


async def test_batch_tokens_narrows_the_registry(rig: Rig) -> None:
    rig.settings.update(batch_tokens=[OTHER])
    async with rig.running():
        for w in WALLETS[:2]:
            await rig.intend(w)
        for w in WALLETS[2:4]:
            await rig.intend(w, token=OTHER)
        await rig.settle()
    assert rig.sent() == [
        ("batch", lower(*WALLETS[2:4])),
        ("close", lower(WALLETS[0])),
        ("close", lower(WALLETS[1])),
    ]


async def test_a_registry_the_node_does_not_answer_batches_nothing(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    rig.node.reverts[FACTORY.lower()] = "0x"  # isTrustedToken reverts: a factory without it
    async with rig.running():
        keys = [await rig.intend(w) for w in WALLETS[:3]]
        await rig.settle()
        assert [(await rig.state(k))[0] for k in keys] == ["confirmed"] * 3
    assert [kind for kind, _ in rig.sent()] == ["close"] * 3
    warnings = [r for r in caplog.records if "isTrustedToken" in r.getMessage()]
    assert len(warnings) == 1  # once, not every step


async def test_the_registry_is_asked_again_after_its_ttl_only(rig: Rig) -> None:
    async with rig.running() as ex:
        registry = ex.submitter.batcher.registry
        assert await registry.listed({TOKEN}) == {TOKEN}
        assert await registry.listed({TOKEN}) == {TOKEN}
        assert rig.node.registry_asked == 1
        rig.node.listed = set()
        rig.now_ms += registry.ttl_ms
        assert await registry.listed({TOKEN}) == frozenset()
        assert rig.node.registry_asked == 2


# -- a member that misbehaves ------------------------------------------------------------


@pytest.mark.parametrize(
    ("revert", "why"),
    [(SWITCHED, "reverted with unknown error 0xf38a38fe"), ("0x", "ran out of its gas stipend")],
)
async def test_a_member_that_fails_in_the_batch_is_isolated_and_closes_alone(
    rig: Rig, revert: str, why: str
) -> None:
    good, bad = WALLETS[:2]
    rig.node.hostile[bad.lower()] = revert  # only inside a batch: alone, it closes
    async with rig.running():
        keys = [await rig.intend(good), await rig.intend(bad)]
        await rig.step()
        rig.node.mine()
        report = await rig.step()  # the receipt: isolated and sent alone at once
        assert (report.requeued, report.jobs) == (1, 1)
        (message,) = rig.alerts("isolated")
        assert bad in message and why in message and "single_close_gas_cap 300000" in message
        await rig.settle()
        assert [(await rig.state(k))[0] for k in keys] == ["confirmed", "confirmed"]
        # a new intent of the same session is never batched again, even after a restart
    async with rig.running():
        await rig.intend(WALLETS[2])
        again = await intend(rig.outbox, bad, position=2, now=rig.node.head.timestamp)
        await rig.settle()
        assert (await rig.state(again))[0] == "confirmed"
    sent = rig.sent()
    assert sent[:2] == [("batch", lower(good, bad)), ("close", lower(bad))]
    assert set(sent[2:]) == {("close", lower(bad)), ("close", lower(WALLETS[2]))}
    rows = table(rig.db_path, "SELECT wallet, intent_key FROM isolated_wallets")
    assert rows == [(bad, keys[1])]


async def test_an_isolated_close_that_reverts_alone_fails_once_with_an_alert(rig: Rig) -> None:
    good, bad = WALLETS[:2]
    rig.node.hostile[bad.lower()] = SWITCHED
    async with rig.running():
        keys = [await rig.intend(good), await rig.intend(bad)]
        await rig.step()
        rig.node.mine()
        await rig.step()  # isolated; its single close passes the preflight and is sent
        rig.node.failing.add(bad.lower())  # the token turns before it is mined
        rig.node.reverts[bad.lower()] = SWITCHED
        await rig.settle(10)
        state, detail = await rig.state(keys[1])
        assert state == "failed" and detail.startswith("reverted on chain: unknown error")
        (message,) = rig.alerts("close_failed")
        assert keys[1] in message
    assert rig.sent() == [("batch", lower(good, bad)), ("close", lower(bad))]


async def test_an_isolated_close_that_reverts_in_preflight_is_never_sent(rig: Rig) -> None:
    good, bad = WALLETS[:2]
    rig.node.hostile[bad.lower()] = SWITCHED
    async with rig.running():
        keys = [await rig.intend(good), await rig.intend(bad)]
        await rig.step()
        rig.node.reverts[bad.lower()] = SWITCHED  # hostile alone too, before its send
        rig.node.mine()
        await rig.settle()
        state, detail = await rig.state(keys[1])
        assert state == "failed"
        assert detail.startswith("preflight: unknown error 0xf38a38fe (taken out of batching")
        assert len(rig.alerts("isolated")) == len(rig.alerts("close_failed")) == 1
    assert rig.sent() == [("batch", lower(good, bad))]


async def test_an_obsolete_member_stays_obsolete_and_batchable(rig: Rig) -> None:
    good, closed = WALLETS[:2]
    rig.node.hostile[closed.lower()] = "0x" + error_selector("SessionIsClosed")
    async with rig.running():
        keys = [await rig.intend(good), await rig.intend(closed)]
        await rig.settle()
        assert await rig.state(keys[1]) == ("obsolete", "batch member reverted: SessionIsClosed()")
        assert rig.alerts("isolated") == []
    assert table(rig.db_path, "SELECT COUNT(*) FROM isolated_wallets") == [(0,)]


async def test_a_simulation_isolates_before_anything_is_sent(rig: Rig) -> None:
    rig.node.simulates = True
    a, b, bad = WALLETS[:3]
    rig.node.hostile[bad.lower()] = "0x"
    async with rig.running():
        keys = [await rig.intend(w) for w in (a, bad, b)]
        report = await rig.step()
        assert report.jobs == 2
        assert "in a simulated closeBatch its close ran out" in rig.alerts("isolated")[0]
        await rig.settle()
        assert [(await rig.state(k))[0] for k in keys] == ["confirmed"] * 3
    assert rig.sent() == [("batch", lower(a, b)), ("close", lower(bad))]


# -- the gas cap of a close alone ----------------------------------------------------------


async def test_a_close_alone_above_the_gas_cap_fails_with_an_alert(rig: Rig) -> None:
    rig.settings.update(single_close_gas_cap=200_000)
    rig.node.listed = {TOKEN}
    heavy, near = WALLETS[:2]
    rig.node.estimates[heavy.lower()] = 250_000
    rig.node.estimates[near.lower()] = 190_000  # +25 % would be 237,500: capped
    async with rig.running():
        keys = [await rig.intend(heavy, token=OTHER), await rig.intend(near, token=OTHER)]
        await rig.settle()
        state, detail = await rig.state(keys[0])
        assert state == "failed" and detail == (
            "gas_cap: eth_estimateGas says its close needs 250000 gas, above "
            "single_close_gas_cap 200000: not sent"
        )
        assert (await rig.state(keys[1]))[0] == "confirmed"
        (message,) = rig.alerts("close_failed")
        assert keys[0] in message
    assert rig.sent() == [("close", lower(near))]
    assert [tx.gas for tx in rig.node.accepted] == [200_000]


async def test_a_close_alone_is_estimated_in_its_preflight_round_trip(rig: Rig) -> None:
    """The latency path: one node round trip carries a lone close's preflight and its
    estimate; a close whose preflight reverts is not sent whatever its estimate said."""
    gone = WALLETS[1]
    rig.node.reverts[gone.lower()] = "0x" + "ab" * 4
    async with rig.running():
        key = await rig.intend(WALLETS[0])
        await rig.step()
        assert (await rig.state(key))[0] == "submitted"
        lone = [t for t in rig.node.trips if "eth_call" in t]
        assert lone == [["eth_call", "eth_estimateGas"]]
        assert rig.node.asked("eth_estimateGas") == 1  # not asked again before signing
        failing = await rig.intend(gone)
        await rig.step()
        assert (await rig.state(failing))[0] == "failed"
    assert rig.sent() == [("close", lower(WALLETS[0]))]


# -- members a batch did not reach ------------------------------------------------------


async def test_unreached_members_are_sent_again_and_not_counted(rig: Rig) -> None:
    rig.node.batch_reach = 1
    async with rig.running():
        keys = [await rig.intend(w) for w in WALLETS[:3]]
        await rig.step()
        rig.node.mine()
        report = await rig.step()
        assert report.requeued == 2
        row = await rig.outbox.intent(keys[1])
        assert row is not None and row.misses == 0 and "BatchIncomplete" in (row.detail or "")
        await rig.settle()
        assert [(await rig.state(k))[0] for k in keys] == ["confirmed"] * 3
    assert table(rig.db_path, "SELECT SUM(mined_without_effect) FROM intents") == [(0,)]
    assert [kind for kind, _ in rig.sent()] == ["batch", "batch", "close"]
    assert rig.alerts("no_effect") == []


async def test_an_intent_whose_session_a_reorg_removed_is_obsolete_and_can_open_again(
    tmp_path: Path,
) -> None:
    """The rule fired on an indexed session; a reorg then took its creation away (the
    index no longer knows the wallet). Obsolete, not failed: when the new branch creates
    the session again and the rule fires at the same position, the same intent is pending
    again and its close is sent (a failed one would stay failed: the 1,000-round reorg
    chaos left one so)."""
    rig = Rig(tmp_path)
    async with rig.running():
        key = await rig.intend(WALLETS[0])
        del rig.store.sessions_by_wallet[WALLETS[0]]  # the reorg removed the creation
        await rig.step()
        (row,) = table(rig.db_path, "SELECT state, detail FROM intents WHERE key = ?", key)
        assert row[0] == "obsolete" and "no longer an indexed session" in row[1]
        # the new branch creates it again; the rule fires at the same position
        again = await rig.intend(WALLETS[0])
        assert again == key
        assert table(rig.db_path, "SELECT state FROM intents WHERE key = ?", key) == [("pending",)]
        await rig.settle()
        assert table(rig.db_path, "SELECT state FROM intents WHERE key = ?", key) == [
            ("confirmed",)
        ]
