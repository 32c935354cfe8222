"""Random reorgs of depth 1 to 20 under the live daemon (`warden run`, zero confirmations,
its own anvil): after each one settles, the daemon's indexed state equals a fresh index
of the chain, and every action taken on a trigger the reorg orphaned is reconciled.

Each round the test makes a few owner moves (create a session, withdraw across its
stop-loss, close it, let time pass), lets the daemon react (it closes sessions on chain),
then replaces the last 1 to 20 blocks with `anvil_reorg`. The new branch carries a random
part of the test's own transactions from the replaced blocks, at their old or later
offsets; the daemon's transactions are gone with their blocks. So triggers vanish, come
back at the same position or a new one, and closes the daemon already made are undone.

Each round ends with one empty block on the new branch. Settled: the daemon has indexed
the node's head (same hash), finished the step that did so (its `/status`), and has nothing
in flight (no open intent, no live job). Then, per round:

- state: `compare(daemon, fresh index up to the head)` is empty;
- reconciled: every session the relayer closed on this chain has a confirmed intent for
  that very transaction, and every confirmed intent's transaction is the one that closed
  its session on this chain (an undone close is never left counted as done);
- no due action missed: no open session for which a rule holds at the head's time.

At the end: no intent with two mined transactions on the final chain.

The node is renewed every `segment` rounds (at most 50): its state is dumped and a fresh
anvil loaded from the dump takes over behind the same URL, while the daemon keeps running
(`_segments.SegmentedNode`); anvil 1.7.1 breaks after roughly 80 to 135 reorgs in one
process. A reorg never reaches below the block the current node was loaded at (a loaded
anvil has no state for earlier blocks), so the first rounds after a renewal are shallower.
Node faults (anvil refusing a reorg, a state that contradicts its own blocks) are reported
apart from failures: a refused reorg is retried once on a renewed node.

A node that breaks under the daemon (anvil 1.7.1 sometimes serves a head but `null` for
blocks below it after a reorg) is replaced by one loaded from the state saved after the
last settled round (`SegmentedNode.fall_back`): the daemon sees a reorg back to it, the
round settles on the new node and counts, and the fall-back is reported as a node fault.

A wrong state is a failure in the round it first appears; the run goes on (the summary
counts rounds with a new wrong state). A round that does not settle stops the run.

The default run has 40 rounds in segments of 15; `make chaos` has 1,000 in segments of 40
(CHAOS_REORG_ROUNDS, CHAOS_REORG_SEGMENT, CHAOS_SEED override).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sqlite3
import statistics
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests._chain import CloseReason
from tests.chaos._daemon import RULES, Daemon, World, wait_until, world, write_config
from tests.chaos._segments import NodeFault, SegmentedNode
from tests.chaos._state import (
    checkpoint,
    compare,
    double_mined,
    fresh_index,
    missed_actions,
    read_only,
    relayer_closes,
    relayer_txs,
    unfinished_intents,
)
from tests.chaos.conftest import ScenarioResult
from tests.conftest import TOKEN, as_tuple
from warden.devnet import DevnetError, free_port

GAS = hex(1_000_000)
SETTLE_TIMEOUT = 60.0
# Rounds per anvil process. anvil 1.7.1 breaks after roughly 80 to 135 `anvil_reorg` calls
# in one process, so the node is renewed from its state dump well before (`_segments`).
ROUNDS_PER_NODE = 40


class Owners:
    """The test's own moves, as plain transactions from anvil's unlocked owner accounts,
    so the same moves can be put on a reorg's new branch."""

    def __init__(self, w: World, rng: random.Random) -> None:
        self.w = w
        self.rng = rng
        self.owners = [w.roles.owner, w.roles.owner2]
        self.wallets: list[str] = []  # created by us (some may have been reorged out)
        self.salt = 0
        for owner in self.owners:
            self._send(owner, w.stack.token.address,
                       w.stack.token.functions.approve(w.stack.factory.address, 2**255)
                       ._encode_transaction_data())  # fmt: skip
        # Reorgs never reach below here: the approvals are the ground everything stands on.
        for _ in range(21):
            w.anvil.rpc("evm_mine")
        self.floor = int(w.anvil.rpc("eth_blockNumber"), 16)

    def _send(self, sender: str, to: str, data: str) -> dict[str, Any]:
        tx = {"from": sender, "to": to, "data": data, "gas": GAS}
        self.w.anvil.rpc("eth_sendTransaction", tx)
        return tx

    def move(self) -> str:
        w, rng = self.w, self.rng
        kind = rng.choices(["create", "withdraw", "close", "time"], [4, 5, 1, 2])[0]
        if kind == "create" or not self.wallets:
            self.salt += 1
            params = {
                "operator": w.roles.operator, "token": w.stack.token.address,
                "deposit": 1_000 * TOKEN, "expiry": w.chain.now() + rng.randint(60, 3_000),
                "budget": 500 * TOKEN, "stopLoss": 600 * TOKEN, "takeProfit": 0,
                "policy": "", "targets": [w.stack.game.address], "maxFeeBps": 1_000,
            }  # fmt: skip
            fn = w.stack.factory.functions.createSession(
                as_tuple(params), self.salt.to_bytes(32, "big")
            )
            owner = rng.choice(self.owners)
            try:
                wallet = fn.call({"from": owner})
            except Exception:  # e.g. the salt's creation survived on this branch
                return "create refused"
            self._send(owner, w.stack.factory.address, fn._encode_transaction_data())
            self.wallets.append(wallet)
            return "create"
        wallet = w.chain.at("SessionWallet", rng.choice(self.wallets[-12:]))
        holder = self._owner(wallet.address)
        calls = wallet.functions
        if kind == "withdraw" and holder:
            amount = rng.choice([150, 250, 450]) * TOKEN
            self._send(holder, wallet.address, calls.withdraw(amount)._encode_transaction_data())
        elif kind == "close" and holder:
            self._send(
                holder, wallet.address, calls.close(CloseReason.OWNER)._encode_transaction_data()
            )
        else:
            w.anvil.rpc("evm_increaseTime", rng.randint(10, 400))
            w.anvil.rpc("evm_mine")
        return kind

    def _owner(self, wallet: str) -> str | None:
        code = self.w.anvil.rpc("eth_getCode", wallet, "latest")
        if code in ("0x", ""):
            return None  # its creation was reorged out
        owner = str(self.w.chain.at("SessionWallet", wallet).functions.owner().call())
        return owner if owner in self.owners else None


def reorg(w: World, rng: random.Random, relayer: str, floor: int) -> tuple[int, int]:
    """Replace the last 1 to 20 blocks; the new branch carries some of our replaced
    transactions. (depth, transactions carried over)."""
    head = w.head()
    if head <= floor:  # just renewed and nothing mined since: one block to replace
        w.anvil.rpc("evm_mine")
        head += 1
    depth = rng.randint(1, min(20, head - floor))
    first = head - depth + 1
    carried: list[list[Any]] = []
    last_offset: dict[str, int] = {}
    for number in range(first, head + 1):
        block = w.anvil.rpc("eth_getBlockByNumber", hex(number), True)
        for tx in block["transactions"]:
            sender = tx["from"].lower()
            if sender == relayer.lower() or rng.random() < 0.3:
                continue  # the daemon's transactions go with their blocks
            offset = number - first
            if rng.random() < 0.3:
                offset = rng.randint(offset, depth - 1)
            offset = max(offset, last_offset.get(sender, 0))  # one sender's order kept
            last_offset[sender] = offset
            item = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": GAS}
            carried.append([item, offset])
    w.anvil.rpc("anvil_reorg", depth, carried)
    return depth, len(carried)


def in_flight(db: Path) -> int:
    with read_only(db) as conn:
        (intents,) = conn.execute(
            "SELECT COUNT(*) FROM intents WHERE state IN ('pending', 'submitted', 'mined')"
        ).fetchone()
        (jobs,) = conn.execute(
            "SELECT COUNT(*) FROM jobs WHERE state IN ('live', 'mined')"
        ).fetchone()
    return int(intents) + int(jobs)


def settled(w: World, daemon: Daemon, port: int) -> bool:
    """The daemon indexed the node's head (same hash), finished the step that did so, and
    has nothing in flight. "Finished" is read from its `/status`, published at the end of
    each step after the rules and the executor ran: when it names the head's number, that
    step's intents are stored. Every round ends on a height never seen before (`round_end`),
    so that number can only be this head's. (A fixed pause after seeing the checkpoint, as
    before, is a race on a busy machine: the rules may take longer than the pause.)"""
    try:
        head = w.anvil.rpc("eth_getBlockByNumber", "latest", False)
        number = int(head["number"], 16)
        with read_only(daemon.db) as conn:
            row = conn.execute("SELECT number, hash FROM checkpoint WHERE id = 1").fetchone()
        if row is None or (row[0], row[1]) != (number, head["hash"]):
            return False
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=30) as r:
            published = json.loads(r.read())["indexed_block"]
        return bool(published == number and in_flight(daemon.db) == 0)
    except (OSError, ValueError, KeyError, sqlite3.Error):  # starting, migrating, busy
        return False


def round_end(w: World) -> None:
    """One empty block on the new branch: the reorg kept the height, this one is new."""
    w.anvil.rpc("evm_mine")


def missing_blocks(w: World, window: int = 64) -> str:
    """Blocks below the node's head that it does not serve: anvil 1.7.1 after some
    reorgs answers a head N yet `null` for a block under it (seen at round 390 of a
    1,000-round run: head 3078, block 3075 null). An indexer must not pass such a gap,
    and a fresh index of the node would wait at it forever, so it is checked first."""
    head = int(w.anvil.rpc("eth_blockNumber"), 16)
    gaps = [
        n for n in range(max(0, head - window), head + 1)
        if w.anvil.rpc("eth_getBlockByNumber", hex(n), False) is None
    ]  # fmt: skip
    if not gaps:
        return ""
    shown = ", ".join(map(str, gaps[:5]))
    return f"; the node serves head {head} but not block(s) {shown} below it"


def codeless(w: World, fresh_db: Path) -> str:
    """Sessions whose creation is on the node's canonical chain but whose wallet has no
    code in its state: the node contradicts its own blocks. anvil 1.7.1's `anvil_reorg`
    sometimes leaves its state so (a balance changed by a reorg that kept the block that
    set it: 10 of 100 empty reorgs in a probe); a close sent to such a wallet succeeds
    without closing anything."""
    with read_only(fresh_db) as fresh:
        created = fresh.execute(
            "SELECT wallet, created_position >> 32 FROM sessions WHERE status != 'closed'"
        ).fetchall()
    missing = [(wallet, block) for wallet, block in created
               if w.anvil.rpc("eth_getCode", wallet, "latest") in ("0x", "")]  # fmt: skip
    if not missing:
        return ""
    named = ", ".join(f"{wallet} (created in block {block})" for wallet, block in missing[:3])
    return (
        f"; the node contradicts its own blocks: {len(missing)} session wallet(s) created "
        f"on its canonical chain have no code, e.g. {named}"
    )


def reconciled(daemon_db: Path, fresh_db: Path, relayer: str) -> list[str]:
    out = [
        f"session {wallet} closed by the relayer on this chain, but its intent is "
        f"{state or 'missing'}"
        for wallet, state in relayer_closes(daemon_db, fresh_db, relayer).items()
        if state != "confirmed"
    ]
    with read_only(fresh_db) as fresh:
        closes = dict(
            fresh.execute(
                "SELECT wallet, lower(tx_hash) FROM events WHERE name = 'Closed' "
                "AND wallet IS NOT NULL"
            ).fetchall()
        )
    with read_only(daemon_db) as db:
        confirmed = db.execute(
            "SELECT i.key, i.wallet, j.mined_hash FROM intents i JOIN jobs j ON j.id = i.job_id "
            "WHERE i.state = 'confirmed'"
        ).fetchall()
    out += [
        f"intent {key} is confirmed by {tx}, but that close is not on this chain"
        for key, wallet, tx in confirmed
        if closes.get(wallet) != tx
    ]
    return out


async def run_reorgs(
    tmp: Path, rounds: int, seed: int, result: ScenarioResult, *, segment: int
) -> None:
    """`segment`: rounds per anvil process; the node is renewed from its state dump after
    each segment (see `_segments`)."""
    rng = random.Random(seed)
    node = SegmentedNode(tmp, seed=seed)
    with world(node) as w:
        # The daemon talks to the node's stable URL (the proxy) and runs across renewals.
        port = free_port()
        config = write_config(tmp, node.url, w, port=port, poll=0.05)
        # A reorg every few blocks may need a session's close sent several times; the rate
        # guard (3 per hour by default) is there for runaway loops, not for this.
        text = config.read_text().replace(
            "replace_after_blocks: 2", "replace_after_blocks: 2\n  max_jobs_per_session: 1000"
        )
        config.write_text(text)
        daemon = Daemon(config, tmp / "daemon.log")
        owners = Owners(w, rng)
        node.save()
        daemon.start()
        depths: list[int] = []
        carried = 0
        settle_times: list[float] = []
        known: set[str] = set()
        failed_rounds = 0
        try:
            for n in range(1, rounds + 1):
                if n > 1 and (n - 1) % segment == 0:
                    try:
                        owners.floor = node.renew()
                    except (NodeFault, DevnetError) as exc:
                        result.node_fault(f"renewal before round {n}: {exc}")
                        break
                for _ in range(rng.randint(2, 6)):
                    owners.move()
                time.sleep(rng.uniform(0.0, 0.3))  # sometimes the daemon acts before the reorg
                try:
                    depth, moved = reorg(w, rng, w.relayer, owners.floor)
                except DevnetError as exc:  # anvil refused its own reorg: try a fresh node
                    result.node_fault(f"round {n}: {exc}")
                    try:
                        owners.floor = node.renew()
                        depth, moved = reorg(w, rng, w.relayer, owners.floor)
                    except (NodeFault, DevnetError) as again:
                        result.node_fault(f"round {n}, again on a renewed node: {again}")
                        break
                round_end(w)
                depths.append(depth)
                carried += moved
                t0 = time.monotonic()
                done = await asyncio.to_thread(
                    wait_until, lambda: settled(w, daemon, port), SETTLE_TIMEOUT, 0.05
                )
                if not done and node.saved is not None and (gap := missing_blocks(w)):
                    # anvil broke under the daemon: a fresh node from the last settled
                    # round's state, which the daemon sees as a reorg back to it
                    result.node_fault(
                        f"round {n}: not settled within {SETTLE_TIMEOUT:.0f} s{gap}; fell back "
                        "to the state saved after the last settled round"
                    )
                    try:
                        owners.floor = node.fall_back()
                    except (NodeFault, DevnetError) as exc:
                        result.node_fault(f"round {n}: the fall-back failed: {exc}")
                        break
                    round_end(w)
                    done = await asyncio.to_thread(
                        wait_until, lambda: settled(w, daemon, port), SETTLE_TIMEOUT, 0.05
                    )
                if not done:
                    what = (
                        f"round {n}: not settled within {SETTLE_TIMEOUT:.0f} s (in flight "
                        f"{in_flight(daemon.db)}, daemon alive {daemon.alive()})"
                    )
                    gap = missing_blocks(w)
                    if gap:  # the node's fault, and nothing can be indexed past it
                        result.node_fault(what + gap)
                        break
                    fresh = tmp / f"fresh-{n}.sqlite"
                    await fresh_index(w.anvil.url, w.stack.factory.address, w.start_block, fresh)
                    contradiction = codeless(w, fresh)
                    if contradiction:  # the node's fault, not Warden's: named apart
                        result.node_fault(what + contradiction)
                    else:
                        result.fail(what)
                    break
                settle_times.append(time.monotonic() - t0)
                fresh = tmp / f"fresh-{n}.sqlite"
                head = await fresh_index(w.anvil.url, w.stack.factory.address, w.start_block, fresh)
                problems = await compare(daemon.db, fresh)
                problems += reconciled(daemon.db, fresh, w.relayer)
                problems += unfinished_intents(daemon.db)
                problems += await missed_actions(fresh, [RULES], head.timestamp)
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{fresh}{suffix}").unlink(missing_ok=True)
                result.runs = n
                # A wrong state the daemon never repairs shows again every round: each
                # problem is a failure once, in the round it first appeared, and the run
                # goes on (a round that does not settle stops it: the next would not either).
                new = [p for p in problems if p not in known]
                known.update(new)
                if new:
                    failed_rounds += 1
                for p in new[:10]:
                    result.fail(f"round {n} (depth {depth}): {p}")
                if len(known) > 200:
                    result.fail(f"round {n}: over 200 distinct problems; stopped")
                    break
                with contextlib.suppress(NodeFault):  # something pooled: keep the last save
                    node.save()  # what a broken node falls back to
            # up to what the daemon indexed: after a node fault the node may not serve
            # every block under its head
            cp = checkpoint(daemon.db)
            upto = cp.number if cp is not None else None
            txs = await relayer_txs(w.anvil.url, w.relayer, w.start_block, upto)
            for p in double_mined(daemon.db, txs, factory=w.stack.factory.address, foreign=set()):
                result.fail(p)
        finally:
            code = daemon.stop()
        if code != 0:
            result.fail(f"daemon exited {code} at SIGTERM")
        with read_only(daemon.db) as db:
            states = dict(
                db.execute("SELECT state, COUNT(*) FROM intents GROUP BY state").fetchall()
            )
        reorgs_seen = (tmp / "daemon.log").read_text().count('"reorg: ')
        renewals = node.renew_seconds or [0.0]
        result.figures.update({
            "depths": f"{min(depths, default=0)} to {max(depths, default=0)}",
            "transactions carried to new branches": str(carried),
            "intents": ", ".join(f"{k} {v}" for k, v in sorted(states.items())),
            "relayer transactions on the final chain": str(len(txs)),
            "daemon reorg log lines": str(reorgs_seen),
            "median settle": f"{statistics.median(settle_times or [0]):.2f} s",
            "rounds with a new wrong state": str(failed_rounds),
            "node renewals": (
                f"{node.renewals} (every {segment} rounds, max {max(renewals):.1f} s each, "
                f"daemon kept running)"
            ),
            "fall-backs after a broken node": str(node.fallbacks),
            "final head": str(w.head()),
        })  # fmt: skip
        result.checked += [
            "after each reorg settles: indexed state equals a fresh index",
            "every relayer close on the chain has its confirmed intent and every confirmed "
            "intent's close is on the chain",
            "no open intent, no due action missed",
            "no intent with two mined transactions (final chain)",
        ]


def scenario(
    tmp: Path, rounds: int, seed: int, report: list[ScenarioResult], *, segment: int
) -> None:
    result = ScenarioResult(f"reorgs (depth 1-20, seed {seed})")
    report.append(result)
    asyncio.run(run_reorgs(tmp, rounds, seed, result, segment=segment))
    assert not result.failures, "\n".join(result.failures[:20])
    # A node fault the scenario recovered from (a refused reorg retried on a renewed node)
    # is reported, not failed; one that stopped the run leaves rounds undone.
    faults = "\n".join(result.node_faults)
    assert result.runs == rounds, f"stopped after {result.runs} of {rounds} rounds: {faults}"


def test_reorgs_short(tmp_path: Path, chaos_report: list[ScenarioResult]) -> None:
    scenario(tmp_path, 40, seed=3, report=chaos_report, segment=15)


@pytest.mark.chaos
def test_reorgs_1000(tmp_path: Path, chaos_report: list[ScenarioResult]) -> None:
    rounds = int(os.environ.get("CHAOS_REORG_ROUNDS", "1000"))
    segment = int(os.environ.get("CHAOS_REORG_SEGMENT", str(ROUNDS_PER_NODE)))
    if not 1 <= segment <= 50:
        raise ValueError(f"CHAOS_REORG_SEGMENT must be 1 to 50, got {segment}")
    seed = int(os.environ.get("CHAOS_SEED", "11"))
    scenario(tmp_path, rounds, seed=seed, report=chaos_report, segment=segment)
