"""The devnet activity generator on a real anvil: the sessions it opens and moves make the
shipped rules (plus the devnet demo idle rule) fire stop-loss, take-profit, expiry, idle
and sweep; RPC failures never end it; it stops when told."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from web3 import Web3

from chain import ChainClient
from indexer import BlockRef, Event, IndexerStore, Session, apply, open_database
from rules import Evaluator, Intent, RulesHost, Snapshot, load_rules, replay
from tests._chain import Chain
from tests.conftest import Roles, Stack
from tests.indexer._support import FAST_RETRY, config, index_to_head
from warden.app.snapshots import snapshot_of
from warden.devnet import Anvil, Deployment, deploy_stack, free_port
from warden.devnet.activity import DEMO_POLICY, Activity

ROOT = Path(__file__).resolve().parents[3]
RULES = [ROOT / "config" / "rules", ROOT / "config" / "devnet" / "rules"]
# What each scenario must make fire, and nothing else.
EXPECTED = {
    "stop_loss": "stop_loss",
    "take_profit": "take_profit",
    "expiry": "expired",
    "idle": "idle",
    "sweep": "swept",
}


def deployment(chain: Chain, stack: Stack, roles: Roles) -> Deployment:
    return Deployment(
        chain_id=chain.w3.eth.chain_id,
        deployer=roles.deployer,
        operator=roles.operator,
        treasury=roles.treasury,
        token=stack.token.address,
        factory=stack.factory.address,
        game=stack.game.address,
        block=chain.w3.eth.block_number,
    )


def owners(chain: Chain, roles: Roles) -> list[str]:
    taken = {roles.deployer, roles.owner, roles.operator, roles.treasury}
    return [a for a in chain.accounts[3:10] if a not in taken]


async def run_cycles(activity: Activity, cycles: int) -> None:
    """Run until `cycles` cycles are done, then stop it and wait for it to return."""
    stop = asyncio.Event()
    task = asyncio.create_task(activity.run(stop))
    try:
        async with asyncio.timeout(300):  # a safety net, not a timing assertion
            while activity.cycles < cycles:
                assert not task.done(), "run() returned before stop was set"
                await asyncio.sleep(0.02)
    finally:
        stop.set()
    await asyncio.wait_for(task, 60)
    assert task.result() is None


def fired(
    evaluator: Evaluator, events: list[Event], head: BlockRef
) -> Iterator[tuple[Intent, Session]]:
    """Every intent the rules emit over the indexed history, as the daemon would decide
    them (time-driven checks included, up to the head's time)."""
    sessions: dict[str, Session] = {}

    def changes() -> Iterator[tuple[Snapshot, int]]:
        for event in events:
            if event.wallet is None or event.seq is None:
                continue
            sessions[event.wallet] = apply(sessions.get(event.wallet), event)
            yield snapshot_of(sessions[event.wallet], 18), event.timestamp

    for _, decision in replay(evaluator, changes(), until=head.timestamp):
        for intent in decision.intents:
            yield intent, sessions[intent.wallet]


async def test_every_scenario_makes_its_rule_fire(
    tmp_path: Path, fresh_chain: Chain, stack: Stack, roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    chain = fresh_chain
    start = chain.w3.eth.block_number + 1
    logger = logging.getLogger("test.activity")
    caplog.set_level(logging.INFO, logger="test.activity")
    async with ChainClient([chain.anvil.url], retry=FAST_RETRY) as client:
        activity = Activity(
            client,
            deployment(chain, stack, roles),
            roles.operator,
            owners(chain, roles),
            random.Random(6),
            logger,
            period=0.01,
            time_warp=20,  # 8 cycles: 160 s of chain time, past expiry (45 s) and idle (60 s)
        )
        await run_cycles(activity, 8)

    opened = activity.sessions
    assert {s.scenario for s in opened.values()} == set(EXPECTED)
    for moving in ("stop_loss", "take_profit", "sweep"):  # the last cycle's wait for the next
        assert any(s.moved for s in opened.values() if s.scenario == moving), moving

    # On chain: every session names the relayer; the thresholds were really crossed.
    now = chain.now()
    for wallet, s in opened.items():
        contract = chain.at("SessionWallet", wallet)
        assert contract.functions.operator().call() == roles.operator
        assert contract.functions.owner().call() == s.owner != roles.operator
        balance = chain.balance(stack.token, wallet)
        revoked = contract.functions.revoked().call()
        assert revoked == (s.scenario == "sweep" and s.moved)
        if s.scenario == "stop_loss" and s.moved:
            assert 0 < balance < s.stop_loss
        if s.scenario == "take_profit" and s.moved:
            assert balance >= s.take_profit
        if s.scenario == "expiry":
            assert contract.functions.expiry().call() == s.expiry
    assert any(s.scenario == "expiry" and s.expiry <= now for s in opened.values())

    # The rules, over the indexed chain, fire each kind for the sessions meant for it.
    db = tmp_path / "activity.sqlite"
    await index_to_head(chain.anvil.url, db, config(stack.factory.address, start_block=start))
    handle = await open_database(db)
    try:
        store = IndexerStore(handle)
        events = await store.events()
        head = await store.checkpoint()
        indexed = {s.wallet: s for s in await store.all_sessions()}
    finally:
        await handle.close()
    assert head is not None and set(indexed) == set(opened)
    evaluator = Evaluator(RulesHost(), load_rules(RULES))
    reasons: dict[str, set[str]] = {}
    for intent, session in fired(evaluator, events, head):
        scenario = opened[intent.wallet].scenario
        assert intent.reason == EXPECTED[scenario], (intent, scenario)
        assert session.operator == roles.operator
        reasons.setdefault(intent.reason, set()).add(intent.rule)
    assert set(reasons) == set(EXPECTED.values())
    assert "demo-idle" in reasons["idle"]
    assert all(s.policy == DEMO_POLICY for s in opened.values() if s.scenario == "idle")

    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("activity: opened ") for line in lines)
    assert any("withdrew" in line and "< stop-loss" in line for line in lines)
    assert any(line.startswith("activity: owner revoked") for line in lines)


async def test_on_an_interval_mining_devnet_like_make_run() -> None:
    """As the daemon runs it: anvil mining every second (receipts come later than the
    send), the stack from deploy_stack, owners 3..8, no time warp."""
    with Anvil(block_time=1) as node:
        w3 = Web3(Web3.HTTPProvider(node.url))
        accounts: list[str] = list(w3.eth.accounts)
        dep = deploy_stack(w3, deployer=accounts[0], operator=accounts[1], treasury=accounts[2])
        async with ChainClient([node.url], retry=FAST_RETRY) as client:
            activity = Activity(
                client, dep, dep.operator, accounts[3:9], random.Random(3),
                logging.getLogger("test.activity.devnet"), period=1, per_cycle=3,
            )  # fmt: skip
            await run_cycles(activity, 2)  # stopped in the pause after the second
        opened = list(activity.sessions.values())
        assert Counter(s.scenario for s in opened) == {
            "idle": 2, "expiry": 1, "stop_loss": 1, "take_profit": 1, "sweep": 1,
        }  # fmt: skip
        token = w3.eth.contract(address=Web3.to_checksum_address(dep.token),
                                abi=[{"type": "function", "name": "balanceOf",
                                      "stateMutability": "view", "inputs": [{"type": "address"}],
                                      "outputs": [{"type": "uint256"}]}])  # fmt: skip
        (losing,) = (s for s in opened if s.scenario == "stop_loss")
        assert losing.moved  # in the second cycle, after its creation was mined
        assert 0 < token.functions.balanceOf(losing.wallet).call() < losing.stop_loss
        assert {s.owner for s in opened} <= set(accounts[3:9])


async def test_open_sessions_are_capped(
    fresh_chain: Chain, stack: Stack, roles: Roles, caplog: pytest.LogCaptureFixture
) -> None:
    """Without a Warden closing them, sessions stop piling up at `max_open`."""
    chain = fresh_chain
    logger = logging.getLogger("test.activity.cap")
    caplog.set_level(logging.INFO, logger="test.activity.cap")
    async with ChainClient([chain.anvil.url], retry=FAST_RETRY) as client:
        activity = Activity(
            client, deployment(chain, stack, roles), roles.operator, owners(chain, roles),
            random.Random(1), logger, period=0.01, per_cycle=2, max_open=3,
        )  # fmt: skip
        await run_cycles(activity, 5)
    assert len(activity.sessions) == 3
    waiting = [r for r in caplog.records if "waiting for Warden" in r.getMessage()]
    assert len(waiting) == 1  # said once, not every cycle


async def test_rpc_failures_are_logged_and_never_end_it(
    stack: Stack, roles: Roles, chain: Chain, caplog: pytest.LogCaptureFixture
) -> None:
    logger = logging.getLogger("test.activity.down")
    caplog.set_level(logging.WARNING, logger="test.activity.down")
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    retry = FAST_RETRY.__class__(initial=0.001, max_delay=0.002, attempts=2)
    async with ChainClient([nowhere], retry=retry) as client:
        activity = Activity(
            client, deployment(chain, stack, roles), roles.operator, owners(chain, roles),
            random.Random(2), logger, period=0.01,
        )  # fmt: skip
        await run_cycles(activity, 3)
    failures = [r for r in caplog.records if "retrying next cycle" in r.getMessage()]
    assert len(failures) >= 3 and all(r.levelno == logging.WARNING for r in failures)
    assert activity.sessions == {}


def test_the_relayer_is_never_an_owner(chain: Chain, stack: Stack, roles: Roles) -> None:
    client = ChainClient([chain.anvil.url])
    dep = deployment(chain, stack, roles)
    with pytest.raises(ValueError, match="relayer"):
        Activity(client, dep, roles.operator, [roles.owner2, roles.operator.lower()],
                 random.Random(0), logging.getLogger("x"))  # fmt: skip
    with pytest.raises(ValueError, match="at least one owner"):
        Activity(client, dep, roles.operator, [], random.Random(0), logging.getLogger("x"))
