"""The workload generator and the benchmark seeder make real, consistent chain activity.

Checked on the real chain, from receipts and eth_getLogs: every kind of action happened and
left the event it should; every wallet's sequence numbers run 0..n without a gap; every
balanceAfter equals the wallet's balance at that block and follows from the previous one,
the event's own amounts and the plain transfers in between; spoofed events come only from
the look-alike; a seed replays the same actions. The Seeder's chain survives an anvil
dump and reload with the same eth_getLogs counts as its metadata.
"""

from __future__ import annotations

import importlib.util
import random
import sys
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract

from tests._chain import Chain, CloseReason, abi_signature
from tests._workload import ACTIONS, HUGE_DEPOSIT, Workload
from tests.conftest import Roles, Stack

ROOT = Path(__file__).resolve().parent.parent
STEPS = 150
SEED = 20_251_121
TRANSFER = Web3.keccak(text="Transfer(address,address,uint256)")

# action -> the wallet event its receipts must contain (None: no wallet event at all)
# Contracts v2: an action in ABSORBS first records a plain transfer made since the last
# event in a `Synced` that takes the inflow's fee.
EXPECTED_EVENT: dict[str, str | None] = {
    "create": "SessionCreated",
    "deposit": "Deposited",
    "execute": "Executed",
    "withdraw": "Withdrawn",
    "extend": "Extended",
    "revoke": "Revoked",
    "close_owner": "Closed",
    "close_operator": "Closed",
    "sweep_expired": "Closed",
    "sweep_revoked": "Closed",
    "donate": None,
    "donate_sync": "Synced",
    "recover": "Recovered",
}
ABSORBS = frozenset({"deposit", "execute", "withdraw", "extend", "revoke", "donate_sync"})
CLOSE_REASONS = {
    "close_owner": {CloseReason.OWNER},
    "close_operator": {
        CloseReason.STOP_LOSS,
        CloseReason.TAKE_PROFIT,
        CloseReason.EXPIRED,
        CloseReason.IDLE,
    },
    "sweep_expired": {CloseReason.SWEPT},
    "sweep_revoked": {CloseReason.SWEPT},
}


def _session_topics(chain: Chain, stack: Stack) -> dict[bytes, tuple[Contract, str]]:
    """topic0 -> (contract with its ABI, name) of the session events."""
    names = set(filter(None, EXPECTED_EVENT.values()))
    wallet_abi = chain.at("SessionWallet", stack.factory.address)
    return {
        bytes(Web3.keccak(text=abi_signature(item))): (c, item["name"])
        for c in (stack.factory, wallet_abi)
        for item in c.abi
        if item["type"] == "event" and item["name"] in names
    }


def _session_logs(chain: Chain, stack: Stack, start: int) -> list[Any]:
    """Every log with a session event signature (factory or wallet) since `start`."""
    topics = _session_topics(chain, stack)
    logs = chain.w3.eth.get_logs(
        {"fromBlock": start, "toBlock": "latest", "topics": [[HexBytes(t) for t in topics]]}
    )
    out = []
    for log in logs:
        contract, name = topics[bytes(log["topics"][0])]
        out.append((log, contract.events[name]().process_log(log)))
    return out


@pytest.fixture
def workload_run(fresh_chain: Chain, stack: Stack, roles: Roles) -> tuple[Workload, list[str]]:
    wl = Workload(fresh_chain, stack, roles, random.Random(SEED), big_amounts=True)
    return wl, wl.run(STEPS)


def test_every_action_happens_and_leaves_its_event(
    workload_run: tuple[Workload, list[str]], fresh_chain: Chain, stack: Stack, roles: Roles
) -> None:
    wl, described = workload_run
    assert len(described) == STEPS
    assert not wl.reverts, f"the workload chose invalid actions: {wl.reverts}"
    assert {a for a in ACTIONS if wl.counts[a] == 0} == set()
    topics = _session_topics(fresh_chain, stack)
    unsynced: set[str] = set()  # wallets with a plain transfer no event has recorded yet
    absorbed = 0
    for record in wl.records:
        assert all(r["status"] == 1 for r in record.receipts)
        logs = [log for r in record.receipts for log in r["logs"]]
        names = [
            topics[bytes(log["topics"][0])][1]
            for log in logs
            if log["address"] in (stack.factory.address, record.wallet)
            and bytes(log["topics"][0]) in topics
        ]
        if record.action in EXPECTED_EVENT:
            expected = EXPECTED_EVENT[record.action]
            want = [expected] if expected else []
            if record.action in ABSORBS and record.wallet in unsynced and expected != "Synced":
                want = ["Synced", *want]
                absorbed += 1
            assert names == want, (record, names)
        if record.action == "donate":
            unsynced.add(str(record.wallet))
        elif record.action in ABSORBS or record.action in CLOSE_REASONS:
            unsynced.discard(str(record.wallet))
        if record.action in CLOSE_REASONS:
            wallet = fresh_chain.at("SessionWallet", str(record.wallet))
            (closed,) = fresh_chain.events(record.receipts[-1], wallet)
            assert closed["args"]["reason"] in CLOSE_REASONS[record.action]
        if record.action in ("donate", "recover", "donate_sync"):
            into = [
                log
                for log in logs
                if bytes(log["topics"][0]) == TRANSFER
                and log["topics"][2][-20:] == HexBytes(str(record.wallet))
            ]
            assert len(into) == 1, record  # a plain transfer into the wallet
        if record.action == "spoof":
            assert {log["address"] for log in logs} == {stack.lookalike.address}
            assert len({bytes(log["topics"][0]) for log in logs}) == 5
        if record.action in ("mine", "time_jump"):
            assert record.receipts == ()
    assert absorbed > 0  # the seed exercises an inflow found by a later operation


def test_wallet_events_are_gapless_and_balances_exact(
    workload_run: tuple[Workload, list[str]], fresh_chain: Chain, stack: Stack
) -> None:
    wl, _ = workload_run
    token = stack.token
    events = _session_logs(fresh_chain, stack, wl.start_block)
    created = {
        e["args"]["wallet"]: e
        for log, e in events
        if e["event"] == "SessionCreated" and log["address"] == stack.factory.address
    }
    assert set(created) == set(wl.sessions)
    assert all(e["address"] == stack.factory.address for e in created.values())

    by_wallet: dict[str, list[Any]] = defaultdict(list)
    spoofed = []
    for log, e in events:
        if e["event"] == "SessionCreated":
            if log["address"] == stack.factory.address:
                by_wallet[e["args"]["wallet"]].append(e)
            else:
                spoofed.append(log)
        elif log["address"] in created:
            by_wallet[log["address"]].append(e)
        else:
            spoofed.append(log)
    assert spoofed and {log["address"] for log in spoofed} == {stack.lookalike.address}
    assert len(spoofed) == 5 * wl.counts["spoof"]

    donations = _transfers_in(fresh_chain, token, wl.start_block, set(created))
    folded = absorbed = 0
    for wallet, evs in by_wallet.items():
        assert evs[0]["event"] == "SessionCreated"
        assert [e["args"]["seq"] for e in evs[1:]] == list(range(1, len(evs))), wallet
        previous = evs[0]
        last_in_block = {e["blockNumber"]: e for e in evs}  # an absorb's Synced shares a tx
        for e in evs:
            block = e["blockNumber"]
            after = e["args"]["balanceAfter"]
            if last_in_block[block] is e:
                assert after == fresh_chain.balance(token, wallet, block), (wallet, e)
            if e is previous:
                continue
            between = sum(v for b, v in donations[wallet] if previous["blockNumber"] < b < block)
            expected = previous["args"]["balanceAfter"] + between + _delta(e, token.address)
            assert after == expected, (wallet, e, between)
            if e["event"] == "Synced":
                assert e["args"]["previousBalance"] == previous["args"]["balanceAfter"]
                absorbed += bool(between)
            elif between:
                # only a close (and a recover after it) refunds an unrecorded transfer as
                # it is; any other operation records it in a Synced first, with its fee
                assert e["event"] in ("Closed", "Recovered"), (wallet, e)
                folded += 1
            previous = e
    assert folded > 0 and absorbed > 0

    deposits = [e["args"]["deposit"] for e in created.values()]
    assert HUGE_DEPOSIT in deposits
    assert any(2**63 - 8 <= d <= 2**64 + 8 for d in deposits)


def _transfers_in(
    chain: Chain, token: Contract, start: int, wallets: set[str]
) -> dict[str, list[tuple[int, int]]]:
    """(block, amount) of every token transfer into each wallet."""
    out: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for log in chain.w3.eth.get_logs(
        {"fromBlock": start, "toBlock": "latest", "address": token.address, "topics": [TRANSFER]}
    ):
        to = Web3.to_checksum_address(log["topics"][2][-20:])
        if to in wallets:
            out[to].append((log["blockNumber"], int.from_bytes(log["data"], "big")))
    return out


def _delta(e: Any, token: str) -> int:
    """The change of the wallet's balance the event itself reports."""
    a = e["args"]
    match e["event"]:
        case "Deposited":
            return int(a["amount"])
        case "Withdrawn":
            return -int(a["amount"])
        case "Executed":
            return int(a["received"]) - int(a["spent"])
        case "Closed":
            return -int(a["refund"])
        case "Recovered":
            return -int(a["amount"]) if a["asset"] == token else 0
        case "Synced":
            return -int(a["fee"])  # taken out of the inflow for the treasury
        case _:
            return 0


def test_the_same_seed_replays_the_same_actions(
    fresh_chain: Chain, stack: Stack, roles: Roles
) -> None:
    snap = fresh_chain.snapshot()
    first = Workload(fresh_chain, stack, roles, random.Random(5)).run(40)
    fresh_chain.revert_to(snap)
    snap = fresh_chain.snapshot()
    again = Workload(fresh_chain, stack, roles, random.Random(5)).run(40)
    fresh_chain.revert_to(snap)
    other = Workload(fresh_chain, stack, roles, random.Random(6)).run(40)
    assert first == again
    assert other != first


# ------------------------------------------------------------------------- seeder


def _seed_chain_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("seed_chain", ROOT / "scripts" / "seed_chain.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules["seed_chain"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_seeded_chain_survives_dump_and_reload(tmp_path: Path) -> None:
    seed_chain = _seed_chain_module()
    params = seed_chain.SeedParams(events=2_000, sessions=80, seed=3)
    lines: list[str] = []
    # small segments: the chain goes through three dumps and reloads while seeding
    meta = seed_chain.seed(params, tmp_path, progress=lines.append, segment_events=700)
    assert meta.session_events == 2_000 and meta.extra["segments"] == 3
    assert set(meta.counts) == set(seed_chain.SESSION_EVENTS)
    assert meta.counts["SessionCreated"] == meta.sessions == 80
    assert meta.spoofed_logs > 0 and lines
    assert Path(meta.state_file).stat().st_size == meta.state_bytes
    assert seed_chain.ensure_seeded(2_000, 80, seed_value=3, cache_dir=tmp_path) == meta

    with seed_chain.seeded_anvil(meta) as node:
        tally = seed_chain.count_logs(node.url, meta, chunk=5)
        assert dict(tally.counts) == meta.counts
        assert tally.spoofed == meta.spoofed_logs
        assert len(tally.wallets) == meta.sessions
        head = node.rpc("eth_getBlockByNumber", "latest", False)
        assert int(head["number"], 16) == meta.head_block
