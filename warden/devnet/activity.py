"""Devnet activity: sessions opened and moved so that every shipped rule fires within
minutes of `make run`, visible in the daemon's log and the API.

Each cycle (every `period` seconds) opens `per_cycle` sessions, taking scenarios in turn
(idle, expiry, stop-loss, take-profit, sweep: the slow ones first), and moves the sessions
opened in earlier cycles across their thresholds:

- stop-loss: an explicit stop-loss; next cycle the owner withdraws below it;
- take-profit: an explicit take-profit; next cycle a "win" arrives (the owner transfers
  tokens into the wallet and calls `sync()`, so the balance rises while the deposit does
  not, as a game payout would);
- expiry: expires `expiry_after` seconds of chain time after it was opened;
- idle: policy "demo", never touched; `config/devnet/rules/idle-fast.yaml` closes it after
  60 s of chain time (the shipped idle windows are 1 h to 24 h);
- sweep: next cycle the owner revokes the operator, so Warden sweeps it.

Every session names `operator` (Warden's relayer) so that Warden may close it.

Why nobody plays the TestGame: a game is reached only through `SessionWallet.execute`,
which only the session's operator may call, and that is Warden's relayer; sending from it
would race Warden's nonce manager. Owner withdrawals (a loss) and synced transfers (a win)
move balances the way play would, through the same events and `balanceAfter`.

Why a demo policy and not clock jumps: `evm_increaseTime` by a day would expire every
other session at once and push chain time far past the wall clock in the API. Tests may
still fast-forward with `time_warp` (seconds added to chain time at each cycle's start).

Transactions are sent from anvil's unlocked owner accounts (`eth_sendTransaction`), each
owner's in order and different owners concurrently, and each is awaited by its receipt
(the devnet mines on an interval). Nothing here may stop the daemon: a failed action is
logged and tried again in a later cycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from eth_abi.abi import decode, encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain import CallReverted, ChainClient, ChainError
from chain.reverts import decode_revert
from chain.units import token_units
from contracts import UINT256_MAX
from warden.devnet.anvil import Deployment

DEMO_POLICY = "demo"  # config/devnet/rules/idle-fast.yaml: idle after 60 s
POLICIES = ("", "berzerker", "merchant", "disciple")
SCENARIOS = ("idle", "expiry", "stop_loss", "take_profit", "sweep")
MOVED_LATER = frozenset({"stop_loss", "take_profit", "sweep"})  # need a second action
LONG_EXPIRY = 86_400  # sessions that must not expire while their scenario plays out
OWNER_FUNDS = 10**9  # whole tokens minted to each owner once
PARAMS_TYPE = "(address,address,uint256,uint64,uint256,uint256,uint256,string,address[],uint16)"


def _selector(signature: str) -> bytes:
    return keccak(text=signature)[:4]


CREATE_SESSION = _selector(f"createSession({PARAMS_TYPE},bytes32)")
PREDICT_WALLET = _selector("predictWallet(address,bytes32)")
FEE_FOR = _selector("feeFor(uint256)")
FEE_BPS = _selector("feeBps()")
MINT = _selector("mint(address,uint256)")
APPROVE = _selector("approve(address,uint256)")
TRANSFER = _selector("transfer(address,uint256)")
BALANCE_OF = _selector("balanceOf(address)")
ALLOWANCE = _selector("allowance(address,address)")
WITHDRAW = _selector("withdraw(uint256)")
REVOKE = _selector("revoke()")
SYNC = _selector("sync()")
CLOSED = _selector("closed()")


class TransactionFailed(Exception):
    """A transaction was mined with status 0 or no receipt came in time: log, retry later."""


@dataclass
class Opened:
    """A session this generator opened, and where its scenario stands."""

    wallet: str
    owner: str
    scenario: str  # one of SCENARIOS
    policy: str
    deposit: int
    stop_loss: int
    take_profit: int
    expiry: int
    moved: bool = False  # the second action (withdraw, win, revoke) is done
    closed: bool = False  # seen closed on chain


@dataclass(frozen=True)
class _Job:
    what: str  # for the log line when it fails
    run: Callable[[], Awaitable[None]]


def _data(selector: bytes, types: Sequence[str] = (), values: Sequence[Any] = ()) -> str:
    return "0x" + (selector + encode(list(types), list(values))).hex()


def _short(address: str) -> str:
    return address[:8] + ".."


class Activity:
    """The devnet activity generator; see the module docstring. `run` until `stop` is set."""

    def __init__(
        self,
        client: ChainClient,
        deployment: Deployment,
        operator: str,
        owners: Sequence[str],
        rng: random.Random,
        logger: logging.Logger,
        *,
        period: float = 10.0,
        per_cycle: int = 2,
        expiry_after: int = 45,
        max_open: int = 30,
        time_warp: int = 0,
        decimals: int = 18,
        receipt_timeout: float = 30.0,
        stop_grace: float = 5.0,
    ) -> None:
        owners = [to_checksum_address(o) for o in owners]
        operator = to_checksum_address(operator)
        if not owners:
            raise ValueError("Activity needs at least one owner account")
        if operator in owners:
            # its transactions would fight Warden's nonce manager
            raise ValueError(f"the relayer {operator} cannot be an activity owner")
        self.client = client
        self.factory = to_checksum_address(deployment.factory)
        self.token = to_checksum_address(deployment.token)
        self.game = to_checksum_address(deployment.game)
        self.operator = operator
        self.owners = owners
        self.rng = rng
        self.log = logger
        self.period = period
        self.per_cycle = per_cycle
        self.expiry_after = expiry_after
        self.max_open = max_open
        self.time_warp = time_warp
        self.decimals = decimals
        self.unit = 10**decimals
        self.receipt_timeout = receipt_timeout
        self.stop_grace = stop_grace
        self.sessions: dict[str, Opened] = {}  # every session opened, in order
        self.cycles = 0  # cycles attempted, failed ones included
        self._funded: set[str] = set()
        self._next_scenario = 0
        self._next_owner = 0
        self._salt = 0
        self._waiting_logged = False

    # ------------------------------------------------------------------ loop

    async def run(self, stop: asyncio.Event) -> None:
        """Cycle every `period` seconds until `stop` is set. Once it is, the actions in
        flight may finish (for up to `stop_grace` seconds, so that what was sent is also
        recorded) and no new one starts; then the cycle is cancelled."""
        self.log.info(
            "activity: generating sessions for %d owners every %g s",
            len(self.owners),
            self.period,
        )
        while not stop.is_set():
            cycle = asyncio.ensure_future(self.cycle(stop))
            stopping = asyncio.ensure_future(stop.wait())
            await asyncio.wait({cycle, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not cycle.done():
                await asyncio.wait({cycle}, timeout=self.stop_grace)
            for task in (cycle, stopping):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if not cycle.cancelled() and (exc := cycle.exception()):
                if isinstance(exc, ChainError | TransactionFailed):
                    self.log.warning("activity: cycle failed, retrying next cycle: %s", exc)
                else:  # a bug here must not stop the daemon, but must show
                    self.log.error("activity: cycle failed, retrying next cycle", exc_info=exc)
            self.cycles += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.period)
        self.log.info("activity: stopped after %d cycles", self.cycles)

    async def cycle(self, stop: asyncio.Event | None = None) -> None:
        """One round: fund owners (once), warp time, follow up, open new sessions. Once
        `stop` is set, no further action starts."""
        await self._fund_owners()
        if self.time_warp:
            await self.client.call("evm_increaseTime", self.time_warp)
            await self.client.call("evm_mine")
        await self._refresh()
        jobs: dict[str, list[_Job]] = {}
        for s in self.sessions.values():
            if not s.closed and not s.moved and s.scenario in MOVED_LATER:
                job = _Job(f"{s.scenario} move on {_short(s.wallet)}", partial(self._move, s))
                jobs.setdefault(s.owner, []).append(job)
        open_now = sum(not s.closed for s in self.sessions.values())
        room = max(0, min(self.per_cycle, self.max_open - open_now))
        if room == 0 and not self._waiting_logged:
            self.log.info("activity: %d sessions open, waiting for Warden to close some", open_now)
        self._waiting_logged = room == 0
        if room:
            now = await self._chain_time()
            for _ in range(room):
                scenario = SCENARIOS[self._next_scenario % len(SCENARIOS)]
                owner = self.owners[self._next_owner % len(self.owners)]
                self._next_scenario += 1
                self._next_owner += 1
                job = _Job(
                    f"opening a {scenario} session", partial(self._open, owner, scenario, now)
                )
                jobs.setdefault(owner, []).append(job)
        await asyncio.gather(*(self._in_order(js, stop) for js in jobs.values()))

    async def _in_order(self, jobs: list[_Job], stop: asyncio.Event | None) -> None:
        """One owner's actions one after another (one nonce sequence); a failure is logged
        and the rest still run."""
        for job in jobs:
            if stop is not None and stop.is_set():
                return
            try:
                await job.run()
            except CallReverted as exc:
                self.log.warning("activity: %s refused: %s", job.what, decode_revert(exc.data))
            except (ChainError, TransactionFailed) as exc:
                self.log.warning("activity: %s failed (retried later): %s", job.what, exc)

    # --------------------------------------------------------------- actions

    async def _fund_owners(self) -> None:
        """Mint tokens to each owner and let the factory pull them: once, owners at the
        same time (two blocks on an interval-mining devnet, not two per owner)."""
        todo = [owner for owner in self.owners if owner not in self._funded]
        results = await asyncio.gather(*(self._fund(o) for o in todo), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result

    async def _fund(self, owner: str) -> None:
        """Skips what a previous run on this chain already did."""
        if await self._uint(self.token, BALANCE_OF, ["address"], [owner]) < self.unit * 10**6:
            mint = _data(MINT, ["address", "uint256"], [owner, OWNER_FUNDS * self.unit])
            await self._send(owner, self.token, mint)
        allowance = await self._uint(
            self.token, ALLOWANCE, ["address", "address"], [owner, self.factory]
        )
        if allowance < UINT256_MAX // 2:
            approve = _data(APPROVE, ["address", "uint256"], [self.factory, UINT256_MAX])
            await self._send(owner, self.token, approve)
        self._funded.add(owner)

    async def _open(self, owner: str, scenario: str, now: int) -> None:
        rng = self.rng
        deposit_t = rng.randint(5, 20) * 100  # whole tokens: readable log lines
        stop_t = take_t = 0
        expiry = now + LONG_EXPIRY
        policy = rng.choice(POLICIES)
        if scenario == "stop_loss":
            stop_t = deposit_t * rng.randint(15, 40) // 100
            take_t = deposit_t * 3
        elif scenario == "take_profit":
            stop_t = deposit_t // 4
            take_t = deposit_t * rng.randint(120, 200) // 100
        elif scenario == "expiry":
            expiry = now + self.expiry_after
        elif scenario == "idle":
            policy = DEMO_POLICY
        deposit = deposit_t * self.unit
        # the fee in force now is the most the owner accepts (`maxFeeBps`)
        (fee_bps,) = await self._call(self.factory, FEE_BPS, [], [], ["uint16"])
        params = (self.operator, self.token, deposit, expiry, deposit, stop_t * self.unit,
                  take_t * self.unit, policy, [self.game], fee_bps)  # fmt: skip
        self._salt += 1
        salt = (now << 64 | self._salt).to_bytes(32, "big")  # unique across restarts
        wallet = to_checksum_address(
            (await self._call(self.factory, PREDICT_WALLET, ["address", "bytes32"],
                              [owner, salt], ["address"]))[0]
        )  # fmt: skip
        await self._send(
            owner, self.factory, _data(CREATE_SESSION, [PARAMS_TYPE, "bytes32"], [params, salt])
        )
        self.sessions[wallet] = opened = Opened(
            wallet, owner, scenario, policy, deposit, stop_t * self.unit, take_t * self.unit, expiry
        )
        self.log.info("activity: opened %s (%s)", _short(wallet), self._describe(opened))

    def _describe(self, s: Opened) -> str:
        parts = [s.policy or "no policy", f"deposit {self._units(s.deposit)}"]
        if s.stop_loss:
            parts.append(f"stop-loss {self._units(s.stop_loss)}")
        if s.take_profit:
            parts.append(f"take-profit {self._units(s.take_profit)}")
        if s.scenario == "expiry":
            parts.append(f"expires in {self.expiry_after} s")
        elif s.scenario == "idle":
            parts.append("left idle")
        elif s.scenario == "sweep":
            parts.append("to be revoked")
        return ", ".join(parts)

    async def _move(self, s: Opened) -> None:
        """The second step of a scenario: cross the threshold or revoke."""
        balance = await self._uint(self.token, BALANCE_OF, ["address"], [s.wallet])
        if s.scenario == "stop_loss":
            left = s.stop_loss * self.rng.randint(40, 90) // 100 // self.unit * self.unit
            amount = balance - left
            await self._send(s.owner, s.wallet, _data(WITHDRAW, ["uint256"], [amount]))
            self.log.info(
                "activity: owner withdrew %s from %s (balance %s < stop-loss %s)",
                self._units(amount), _short(s.wallet), self._units(left), self._units(s.stop_loss),
            )  # fmt: skip
        elif s.scenario == "take_profit":
            win = s.take_profit - balance + s.deposit * self.rng.randint(1, 20) // 100
            transfer = _data(TRANSFER, ["address", "uint256"], [s.wallet, win])
            await self._send(s.owner, self.token, transfer)
            await self._send(s.owner, s.wallet, _data(SYNC))
            self.log.info(
                "activity: a win of %s paid into %s (balance %s >= take-profit %s)",
                self._units(win), _short(s.wallet), self._units(balance + win),
                self._units(s.take_profit),
            )  # fmt: skip
        elif s.scenario == "sweep":
            await self._send(s.owner, s.wallet, _data(REVOKE))
            self.log.info("activity: owner revoked the operator of %s", _short(s.wallet))
        s.moved = True

    async def _refresh(self) -> None:
        """Mark sessions closed on chain (by Warden, normally) so they stop counting."""
        pending = [s for s in self.sessions.values() if not s.closed]
        if not pending:
            return
        answers = await self.client.batch_each(
            [("eth_call", [{"to": s.wallet, "data": _data(CLOSED)}, "latest"]) for s in pending]
        )
        for s, answer in zip(pending, answers, strict=True):
            if isinstance(answer, str) and decode(["bool"], bytes.fromhex(answer[2:]))[0]:
                s.closed = True
                self.log.debug("activity: %s (%s) is closed", _short(s.wallet), s.scenario)

    # ------------------------------------------------------------------- rpc

    async def _chain_time(self) -> int:
        block = await self.client.get_block("latest")
        if block is None:
            raise TransactionFailed("the node has no latest block")
        return int(block["timestamp"], 16)

    async def _call(
        self, to: str, selector: bytes, types: list[str], values: list[Any], out: list[str]
    ) -> tuple[Any, ...]:
        answer = await self.client.call(
            "eth_call", {"to": to, "data": _data(selector, types, values)}, "latest"
        )
        return tuple(decode(out, bytes.fromhex(str(answer)[2:])))

    async def _uint(self, to: str, selector: bytes, types: list[str], values: list[Any]) -> int:
        return int((await self._call(to, selector, types, values, ["uint256"]))[0])

    async def _send(self, sender: str, to: str, data: str) -> dict[str, Any]:
        """Send from an unlocked account and wait for the receipt (the devnet may mine on
        an interval); a revert at gas estimation raises CallReverted."""
        tx_hash = await self.client.call(
            "eth_sendTransaction", {"from": sender, "to": to, "data": data}
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.receipt_timeout
        while True:
            receipt = await self.client.call("eth_getTransactionReceipt", tx_hash)
            if receipt is not None:
                break
            if loop.time() > deadline:
                raise TransactionFailed(f"no receipt for {tx_hash} in {self.receipt_timeout} s")
            await asyncio.sleep(0.1)
        if int(receipt["status"], 16) != 1:
            raise TransactionFailed(f"transaction {tx_hash} to {_short(to)} reverted")
        return dict(receipt)

    def _units(self, amount: int) -> str:
        return token_units(amount, self.decimals)
