"""Property test: random sequences of session operations against a real SessionWallet.

Each example opens a session with random parameters (deposit, budget below, equal to or
above it or 0, expiry, thresholds; the factory's fee and the creator's `maxFeeBps`, a
balance already at the predicted address, now and then a token the registry refuses or a
fee above the creator's consent, which refuse the creation) on the real anvil and runs a
random sequence of about 1-12 operations: top-up with its fee (consenting to the fee, to
more or to less), operator executes on the TestGame (loss, win, partial win; a selector
the registry does not trust, data shorter than a selector), on allow-listed hostile
targets (over-pulling, re-entering), on a game that is not allow-listed and on tokens (the
session's, and one the session lists as a target that the registry switches between a
trusted call target and a registry token), calls by the wrong role, withdraw, extend,
revoke, close with every reason by owner, operator and stranger, sweep, plain-transfer
donations (which the next operation but a close finds and charges the fee on, capped by
`maxFeeBps`), sync, registry switches (pause, distrust the operator, the game's `play`, the
session token; raise or lower the fee), and time warps, some landing a call exactly on the
expiry or one second either side. A pure-Python model, mirroring the check order of
SessionWallet.sol, predicts every step: success with the exact events and state, or the
exact custom error (name and arguments); the prediction must equal the real transaction's
outcome. Fixed tours (@example) take every revert path in every run. After every step, on
chain:

1. The wallet's token balance equals the model's, exactly (Python ints, never floats).
2. The owner can always recover the unspent funds: while the session is open a
   close(Owner) from the owner would succeed, and nothing is lost:
   owner + wallet + fees + net tokens lost to targets - donations == owner's balance
   before the session was created; the treasury holds exactly the fees.
3. The operator moves tokens only into allow-listed targets, during execute, within the
   budget: every Transfer out of the wallet goes to the owner (withdraw, close, sweep), to
   the executed allow-listed target, or to the treasury exactly the fee of a `Synced`; no
   allowance is left behind; spent() <= budget(), spent() equals the model and the sum of
   the `spent` fields of all Executed events.
4. A close empties the wallet: balance 0, and the owner's balance rose by exactly the
   refund in `Closed`, which is the balance the wallet held before the close (no fee).
5. Sequence numbers rise by exactly one per event: a successful wallet call emits its
   event, after a `Synced` when it found an inflow, each seq one more than the last
   (creation is 0); anything else emits none.
6. Every wallet event's balanceAfter is exact; a transaction's last one equals
   balanceOf(wallet) at that block.

200 sequences by default; WARDEN_PROPERTY_EXAMPLES=10000 runs more (`make chaos` does;
docs/contracts.md has the count and the time of the last long run).
"""

from __future__ import annotations

import itertools
import json
import os
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

import pytest
from hexbytes import HexBytes
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from chain.reverts import Revert, decode_revert
from tests._chain import Chain, CloseReason, selector
from tests.conftest import FEE_BPS, TOKEN, Roles, Stack, as_tuple

EXAMPLES = int(os.environ.get("WARDEN_PROPERTY_EXAMPLES", "200"))
BPS = 10_000
MAX_FEE_BPS = 1_000  # SessionWalletFactory.MAX_FEE_BPS
UINT16_MAX = 2**16 - 1
UINT64_MAX = 2**64 - 1
STRANGER_FUNDS = 10**6 * TOKEN
PLAY = selector("play(uint256)")
BALANCE_OF = selector("balanceOf(address)")
TRANSFER = selector("transfer(address,uint256)")
_salts = itertools.count(1)

Role = Literal["owner", "operator", "stranger"]
Expected = tuple[str, dict[str, Any]]  # (event name, exact args)


def ceil_fee(amount: int, bps: int) -> int:
    return -(-amount * bps // BPS)


# ---------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Amount:
    """An amount relative to the state when the step runs, so that edges are hit often:
    `abs` is `delta`; `balance`, `budget` (what is left of it) and `owner` (the owner's
    tokens) are scaled by `bps`, then `delta` is added (never below 0)."""

    base: Literal["abs", "balance", "budget", "owner"]
    bps: int
    delta: int

    def resolve(self, m: Model) -> int:
        if self.base == "abs":
            return self.delta
        ref = {"balance": m.balance, "budget": max(m.budget - m.spent, 0),
               "owner": m.owner_funds}[self.base]  # fmt: skip
        return max(ref * self.bps // BPS + self.delta, 0)


@dataclass(frozen=True)
class Deposit:
    """The owner approves the wallet for amount + fee, then tops up consenting to the
    factory's fee plus `consent` (below it: FeeAboveMax)."""

    amount: Amount
    consent: int = 0


@dataclass(frozen=True)
class Play:
    """game.setOutcome(win, multiplierBps), then execute(game, data, wager): `call` is
    play(wager) (trusted unless distrusted), setOutcome (never trusted: it would rig the
    game) or the first `short` bytes of play's selector (too short for one)."""

    caller: Role
    wager: Amount
    win: bool
    multiplier_bps: int
    call: Literal["play", "setOutcome", "short"] = "play"
    short: int = 0


@dataclass(frozen=True)
class Hostile:  # operator executes an allow-listed hostile target
    call: Literal["pullPart", "pullExtra", "pullTwice", "pullNothing", "attack"]
    amount: Amount
    arg: int  # pullPart: bps of `amount` pulled (above 10_000 pulls too much); attack: mode


@dataclass(frozen=True)
class Untrusted:  # operator executes a real game that is not on the wallet's allow-list
    wager: Amount


@dataclass(frozen=True)
class TokenCall:
    """operator executes a token: the session's own (never a target), or X, which the
    session lists as a target and the registry switches between a trusted call target
    (balanceOf trusted, transfer not) and a registry token (refused as a target)."""

    token: Literal["session", "x"]
    fn: Literal["balanceOf", "transfer"]
    amount: Amount


@dataclass(frozen=True)
class Withdraw:
    caller: Role
    amount: Amount


@dataclass(frozen=True)
class Extend:  # newExpiry = expiry + delta
    delta: int


@dataclass(frozen=True)
class Revoke:
    pass


@dataclass(frozen=True)
class Close:
    caller: Role
    reason: CloseReason


@dataclass(frozen=True)
class Sweep:  # by the stranger
    pass


@dataclass(frozen=True)
class Donate:  # the stranger transfers tokens straight to the wallet
    amount: int


@dataclass(frozen=True)
class Sync:  # by the stranger
    pass


Switch = Literal["executePaused", "operatorTrusted", "playTrusted", "xIsToken", "tokenTrusted"]


@dataclass(frozen=True)
class Admin:  # the factory owner flips a registry switch
    switch: Switch
    on: bool


@dataclass(frozen=True)
class SetFee:  # the factory owner sets the fee
    bps: int


@dataclass(frozen=True)
class Warp:
    seconds: int


@dataclass(frozen=True)
class WarpToExpiry:
    """Skip time so that the next operation's wallet call (or its only transaction) is
    mined at expiry + offset."""

    offset: int


Op = (
    Deposit | Play | Hostile | Untrusted | TokenCall | Withdraw | Extend | Revoke | Close
    | Sweep | Donate | Sync | Admin | SetFee | Warp | WarpToExpiry
)  # fmt: skip


def amounts(*bases: Literal["balance", "budget", "owner"]) -> st.SearchStrategy[Amount]:
    absolute = st.one_of(
        st.just(0), st.integers(1, 10**6), st.integers(1, 5_000).map(lambda n: n * TOKEN)
    )
    relative = st.builds(
        Amount,
        st.sampled_from(bases),
        st.one_of(st.sampled_from([0, 2_500, 5_000, BPS]), st.integers(0, BPS)),
        st.sampled_from([-1, 0, 0, 1]),
    )
    return st.one_of(st.builds(Amount, st.just("abs"), st.just(0), absolute), relative)


def deposits() -> st.SearchStrategy[Deposit]:
    return st.builds(Deposit, amounts("balance", "owner"), st.sampled_from([0, 0, 0, 1, -1, 2_000]))


def plays() -> st.SearchStrategy[Play]:
    return st.builds(
        Play,
        st.sampled_from(["operator", "operator", "operator", "owner", "stranger"]),
        amounts("balance", "budget"),
        st.booleans(),
        st.one_of(st.sampled_from([0, 5_000, BPS, 20_000, 10**30]), st.integers(0, 40_000)),
        st.sampled_from(["play"] * 8 + ["setOutcome", "short"]),
        st.integers(0, 3),
    )


def hostiles() -> st.SearchStrategy[Hostile]:
    return st.builds(
        Hostile,
        st.sampled_from(["pullPart", "pullExtra", "pullTwice", "pullNothing", "attack"]),
        amounts("balance", "budget"),
        st.one_of(st.integers(0, 4), st.integers(0, 12_000)),
    )


def token_calls() -> st.SearchStrategy[TokenCall]:
    return st.builds(
        TokenCall,
        st.sampled_from(["session", "x", "x"]),
        st.sampled_from(["balanceOf", "balanceOf", "transfer"]),
        amounts("balance"),
    )


def withdrawals() -> st.SearchStrategy[Withdraw]:
    callers = st.sampled_from(["owner", "owner", "operator", "stranger"])
    return st.builds(Withdraw, callers, amounts("balance"))


def closes() -> st.SearchStrategy[Close]:
    callers = st.sampled_from(["owner", "operator", "stranger"])
    return st.builds(Close, callers, st.sampled_from(CloseReason))


def one(op: st.SearchStrategy[Op]) -> st.SearchStrategy[tuple[Op, ...]]:
    return op.map(lambda o: (o,))


def donations() -> st.SearchStrategy[Donate]:
    small = st.one_of(st.integers(1, 10**6), st.integers(1, 1_000).map(lambda n: n * TOKEN))
    return st.builds(Donate, st.one_of(st.just(0), small))


def fees() -> st.SearchStrategy[SetFee]:
    return st.builds(
        SetFee, st.one_of(st.sampled_from([0, 1, 50, 100, 150, MAX_FEE_BPS]), st.integers(0, 999))
    )


def timed() -> st.SearchStrategy[Op]:
    """Operations whose outcome depends on the expiry."""
    return st.one_of(plays(), hostiles(), st.just(Sweep()), closes())


def absorbing() -> st.SearchStrategy[Op]:
    """Operations that find an inflow first and charge its fee (all but a close)."""
    return st.one_of(
        deposits(), plays(), hostiles(), withdrawals(), st.just(Revoke()),
        st.builds(Extend, st.integers(1, 10**6)), st.just(Sync()), token_calls(),
    )  # fmt: skip


SWITCHES: list[Switch] = ["executePaused", "operatorTrusted", "playTrusted", "xIsToken",
                          "tokenTrusted"]  # fmt: skip

# A move is one operation or a pair that belongs together. one_of picks a branch uniformly;
# distinct copies of a strategy weight it (the same object listed twice counts once).
moves: st.SearchStrategy[tuple[Op, ...]] = st.one_of(
    one(deposits()),
    *[one(plays()) for _ in range(4)],
    *[one(hostiles()) for _ in range(2)],
    one(st.builds(Untrusted, amounts("balance"))),
    one(token_calls()),
    *[one(withdrawals()) for _ in range(2)],
    one(st.builds(Extend, st.one_of(st.sampled_from([-10, -1, 0, 1, 2]), st.integers(1, 10**6)))),
    one(st.just(Revoke())),
    *[one(closes()) for _ in range(2)],
    one(st.just(Sweep())),
    one(donations()),
    st.tuples(donations(), st.just(Sync())),
    # An inflow, then whatever finds it (at the fee of the moment, or a new one).
    *[st.tuples(donations(), absorbing()) for _ in range(2)],
    st.tuples(donations(), fees(), absorbing()),
    one(st.just(Sync())),
    one(st.builds(Admin, st.sampled_from(SWITCHES), st.booleans())),
    one(fees()),
    one(st.builds(Warp, st.one_of(st.integers(0, 60), st.integers(61, 10 * 86_400)))),
    one(st.builds(WarpToExpiry, st.integers(-1, 1))),
    # Land an expiry-dependent call exactly on, 1 s before or 1 s after the expiry.
    *[st.tuples(st.builds(WarpToExpiry, st.integers(-1, 1)), timed()) for _ in range(3)],
)
sequences = st.lists(moves, min_size=1, max_size=10).map(lambda ms: [op for m in ms for op in m])


@dataclass(frozen=True)
class SessionSpec:
    deposit: int
    budget: int
    expires_in: int
    stop_loss: int
    take_profit: int
    fee_bps: int = FEE_BPS  # the factory's fee at the creation
    max_fee_bps: int = FEE_BPS  # the creator's consent: below fee_bps, FeeAboveMax
    prefund: int = 0  # already at the predicted address, from the stranger
    token_trusted: bool = True  # False: a token the registry refuses (UntrustedToken)


@st.composite
def session_specs(draw: st.DrawFn) -> SessionSpec:
    deposit = draw(
        st.one_of(st.integers(1, 10**6), st.integers(1, 10_000).map(lambda n: n * TOKEN))
    )
    budget = draw(
        st.one_of(
            st.just(0),
            st.just(deposit),
            st.integers(0, deposit),  # smaller than the deposit
            st.integers(deposit, 3 * deposit),  # larger
            st.integers(1, 10**6),
        )
    )
    low, gap = draw(st.integers(1, 10**24)), draw(st.integers(1, 10**24))
    stop_loss, take_profit = draw(st.sampled_from([(0, 0), (low, 0), (0, low), (low, low + gap)]))
    expires_in = draw(st.one_of(st.integers(10, 120), st.integers(121, 30 * 86_400)))
    fee = draw(st.one_of(st.sampled_from([FEE_BPS, FEE_BPS, 0, 1, MAX_FEE_BPS]),
                         st.integers(0, MAX_FEE_BPS)))  # fmt: skip
    # mostly at or above the fee; now and then below it, which refuses the creation
    consent = draw(st.sampled_from([0, 0, 0, 1, 500, UINT16_MAX - fee, -1]))
    prefund = draw(st.one_of(st.just(0), st.just(0), st.just(0), st.integers(1, 10**6),
                             st.integers(1, 100).map(lambda n: n * TOKEN)))  # fmt: skip
    trusted = draw(st.sampled_from([True] * 19 + [False]))
    return SessionSpec(deposit, budget, expires_in, stop_loss, take_profit, fee,
                       max(fee + consent, 0), prefund, trusted)  # fmt: skip


# --------------------------------------------------------------------------------- model


@dataclass
class Model:
    """What the wallet (and the registry switches it reads) must look like."""

    now: int  # timestamp of the last block; the next transaction is mined at now + 1
    expiry: int
    budget: int
    balance: int  # token.balanceOf(wallet)
    recorded: int  # recordedBalance
    fee_bps: int  # the factory's fee now
    max_fee_bps: int  # the creator's consent, the cap on found inflows
    owner_fees: int  # fees the owner paid on top (creation, top-ups)
    found_fees: int  # fees taken out of inflows the wallet found (prefund, donations)
    owner_funds: int  # token.balanceOf(owner)
    game_funds: int  # token.balanceOf(game): it can only pay out what it holds
    spent: int = 0
    seq: int = 0
    revoked: bool = False
    closed: bool = False
    execute_paused: bool = False
    operator_trusted: bool = True
    play_trusted: bool = True
    x_is_token: bool = False  # X: a trusted call target (False) or a registry token (True)
    net_to_targets: int = 0  # tokens the wallet lost to targets, minus what it won back
    donated: int = 0
    land_at: int | None = None  # set by WarpToExpiry

    def emit(self, name: str, **args: Any) -> Expected:
        self.seq += 1
        return name, {"seq": self.seq, **args}

    def found_fee(self) -> int:
        """The fee `_absorb` takes from an inflow found now."""
        if self.balance <= self.recorded:
            return 0
        return ceil_fee(self.balance - self.recorded, min(self.fee_bps, self.max_fee_bps))

    def available(self) -> int:
        """The balance once `_absorb` has run."""
        return self.balance - self.found_fee()

    def absorb(self) -> list[Expected]:
        """`_absorb`: an inflow found pays its fee and is recorded in a Synced."""
        if self.balance <= self.recorded:
            return []
        fee, previous = self.found_fee(), self.recorded
        self.balance -= fee
        self.found_fees += fee
        self.recorded = self.balance
        return [self.emit("Synced", previousBalance=previous, fee=fee, balanceAfter=self.balance)]

    def owner_gate(self, caller: Role) -> Revert | None:
        """whileOpen, then onlyOwner."""
        if self.closed:
            return Revert("SessionIsClosed", ())
        if caller != "owner":
            return Revert("NotOwner", ())
        return None

    def execute_gate(
        self, caller: Role, operator: str, target: str, allowed: bool, call: bytes | None,
        amount: int,
    ) -> Revert | None:  # fmt: skip
        """Every check of `execute` before the target is called, in the contract's order.
        `allowed`: a target of the session that is no token; `call`: the selector when the
        registry does not trust it (or the data is too short for one), else None."""
        ts = self.now + 1
        if self.closed:
            return Revert("SessionIsClosed", ())
        if caller != "operator":
            return Revert("NotOperator", ())
        if self.revoked:
            return Revert("OperatorRevoked", ())
        if ts >= self.expiry:
            return Revert("SessionExpired", (self.expiry,))
        if self.execute_paused:
            return Revert("ExecutionPaused", ())
        if not self.operator_trusted:
            return Revert("OperatorNotTrusted", (operator,))
        if not allowed:
            return Revert("TargetNotAllowed", (target,))
        if call is not None:
            return Revert("CallNotAllowed", (target, "0x" + call.hex()))
        if amount > self.available():
            return Revert("AmountExceedsBalance", (amount, self.available()))
        return None

    def close_gate(self, caller: Role, reason: CloseReason) -> Revert | None:
        """whileOpen, then _authorizeClose."""
        if self.closed:
            return Revert("SessionIsClosed", ())
        if reason == CloseReason.OWNER:
            if caller != "owner":
                return Revert("NotOwner", ())
        elif reason == CloseReason.SWEPT:
            if not self.revoked and self.now + 1 < self.expiry:
                return Revert("NotSweepable", ())
        else:
            if caller != "operator":
                return Revert("NotOperator", ())
            if self.revoked:
                return Revert("OperatorRevoked", ())
        return None


# ------------------------------------------------------------------------- chain driving


@dataclass(frozen=True)
class Extra:
    """What the test adds to the stack for its own use (deployed once for the module)."""

    x: Contract  # a token the sessions list as a target; see TokenCall
    refused: Contract  # a token the registry never lists


@dataclass
class Env:
    chain: Chain
    stack: Stack
    roles: Roles
    extra: Extra
    wallet: Contract

    def addr(self, role: Role) -> str:
        return str(getattr(self.roles, role))

    def send(self, m: Model, fn: ContractFunction, sender: str) -> tuple[TxReceipt, Revert | None]:
        """Every transaction is mined exactly one second after the previous block."""
        m.now += 1
        self.chain.set_next_timestamp(m.now)
        return self.chain.try_send_raw(fn, sender)

    def setup_tx(self, m: Model, fn: ContractFunction, sender: str) -> TxReceipt:
        receipt, revert = self.send(m, fn, sender)
        assert revert is None, f"setup transaction {fn.fn_name} reverted: {revert}"
        return receipt


@dataclass
class Step:
    """What one operation did and what the model says it had to do."""

    receipts: list[TxReceipt] = field(default_factory=list)  # every transaction, in order
    revert: Revert | None = None  # the real revert of the wallet call, if any
    expected_revert: Revert | None = None
    expected: list[Expected] = field(default_factory=list)  # the wallet events, in order
    payees: frozenset[str] = frozenset()  # who may receive tokens from the wallet (no fee)
    executed: str | None = None  # target of an execute call: no allowance may be left


def run_execute(
    env: Env,
    m: Model,
    step: Step,
    caller: Role,
    target: str,
    data: bytes,
    amount: int,
    outcome: tuple[int, int] | Revert,
    *,
    allowed: bool,
    trusted: bool,
) -> None:
    """Send execute(target, data, amount); `outcome` is what the call does when reached:
    (tokens the target pulls, tokens it pays back) or the revert it bubbles up.
    `allowed`: a target of the session and no token; `trusted`: the registry trusts the
    call's selector on it."""
    refused = None if trusted and len(data) >= 4 else (data[:4] + bytes(4))[:4]
    err = m.execute_gate(caller, env.roles.operator, target, allowed, refused, amount)
    if err is None and isinstance(outcome, Revert):
        err = outcome
    before = m.available()
    if err is None:
        assert not isinstance(outcome, Revert)
        pulled, paid = outcome
        spent_now, received = max(pulled - paid, 0), max(paid - pulled, 0)
        total = m.spent + spent_now
        if total > m.budget:
            err = Revert("BudgetExceeded", (total, m.budget))
    fn = env.wallet.functions.execute(target, data, amount)
    receipt, step.revert = env.send(m, fn, env.addr(caller))
    step.receipts.append(receipt)
    step.expected_revert, step.executed = err, target
    step.payees = frozenset({target}) if allowed else frozenset()
    if err is None:
        step.expected = m.absorb()
        assert m.balance == before
        m.spent = total
        m.balance += paid - pulled
        m.recorded = m.balance
        m.net_to_targets += pulled - paid
        step.expected.append(
            m.emit(
                "Executed",
                target=target,
                selector=data[:4],
                approved=amount,
                spent=spent_now,
                received=received,
                totalSpent=total,
                balanceAfter=m.balance,
            )
        )


def run(env: Env, m: Model, op: Op) -> Step:
    """Apply one operation to the chain and the model; return what to check."""
    step = Step()
    w, token, owner = env.wallet.functions, env.stack.token, env.roles.owner
    factory = env.stack.factory.functions
    if m.land_at is not None:  # after a WarpToExpiry, skip the seconds in between
        first_tx = m.expiry + m.land_at - (1 if isinstance(op, Deposit | Play) else 0)
        m.now, m.land_at = max(m.now, first_tx - 1), None

    def call(fn: ContractFunction, caller: Role, err: Revert | None) -> None:
        receipt, step.revert = env.send(m, fn, env.addr(caller))
        step.receipts.append(receipt)
        step.expected_revert = err

    def admin(*fns: ContractFunction) -> None:
        for fn in fns:
            step.receipts.append(env.setup_tx(m, fn, env.roles.deployer))

    match op:
        case Deposit(amount, consent):
            value = amount.resolve(m)
            consented = min(max(m.fee_bps + consent, 0), UINT16_MAX)
            fee = ceil_fee(value, m.fee_bps)
            step.receipts.append(
                env.setup_tx(m, token.functions.approve(env.wallet.address, value + fee), owner)
            )
            err = m.owner_gate("owner") or (Revert("ZeroAmount", ()) if value == 0 else None)
            if err is None and m.fee_bps > consented:
                err = Revert("FeeAboveMax", (m.fee_bps, consented))
            if err is None and value > m.owner_funds:
                err = Revert("ERC20InsufficientBalance", (owner, m.owner_funds, value))
            if err is None and fee > m.owner_funds - value:
                err = Revert("ERC20InsufficientBalance", (owner, m.owner_funds - value, fee))
            call(w.deposit(value, consented), "owner", err)
            if err is None:
                step.expected = m.absorb()
                m.owner_funds -= value + fee
                m.owner_fees += fee
                m.balance += value
                m.recorded = m.balance
                step.expected.append(m.emit("Deposited", **{"from": owner}, amount=value,
                                            fee=fee, balanceAfter=m.balance))  # fmt: skip
        case Play(caller, wager, win, multiplier, kind, short):
            value = wager.resolve(m)
            game = env.stack.game
            step.receipts.append(
                env.setup_tx(m, game.functions.setOutcome(win, multiplier), env.roles.deployer)
            )
            paid = value * multiplier // BPS if win else 0
            data = bytes(HexBytes(game.encode_abi("play", args=[value])))
            trusted = m.play_trusted
            if kind == "setOutcome":
                data, trusted = (
                    bytes(HexBytes(game.encode_abi("setOutcome", args=[True, 1]))),
                    False,
                )
            elif kind == "short":
                data, trusted = PLAY[:short], False
            outcome: tuple[int, int] | Revert = (value, paid)
            if paid > m.game_funds + value:
                funds = m.game_funds + value
                outcome = Revert("ERC20InsufficientBalance", (game.address, funds, paid))
            run_execute(env, m, step, caller, game.address, data, value, outcome,
                        allowed=True, trusted=trusted)  # fmt: skip
            if step.expected:
                m.game_funds += value - paid
        case Hostile(kind, amount, arg):
            value = amount.resolve(m)
            over, reentrant = env.stack.overpull, env.stack.reentrant
            if kind == "attack":
                target, data = reentrant, reentrant.encode_abi("attack", args=[arg % 5])
                outcome = Revert("ReentrancyGuardReentrantCall", ())
            elif kind == "pullPart":
                part = value * arg // BPS
                target, data = over, over.encode_abi("pullPart", args=[part])
                outcome = (
                    (part, 0)
                    if part <= value
                    else Revert("ERC20InsufficientAllowance", (over.address, value, part))
                )
            elif kind == "pullExtra":
                target, data = over, over.encode_abi("pullExtra", args=[value])
                outcome = Revert("ERC20InsufficientAllowance", (over.address, value, value + 1))
            elif kind == "pullTwice":
                target, data = over, over.encode_abi("pullTwice", args=[value])
                outcome = Revert("ERC20InsufficientAllowance", (over.address, 0, 1))
            else:
                target, data, outcome = over, over.encode_abi("pullNothing", args=[]), (0, 0)
            run_execute(env, m, step, "operator", target.address, bytes(HexBytes(data)), value,
                        outcome, allowed=True, trusted=True)  # fmt: skip
        case Untrusted(wager):
            value = wager.resolve(m)
            game = env.stack.untrusted_game
            data = bytes(HexBytes(game.encode_abi("play", args=[value])))
            run_execute(env, m, step, "operator", game.address, data, value, (value, 0),
                        allowed=False, trusted=False)  # fmt: skip
        case TokenCall(which, method, amount):
            value = amount.resolve(m)
            target = token if which == "session" else env.extra.x
            if method == "balanceOf":
                data = bytes(HexBytes(target.encode_abi("balanceOf", args=[env.wallet.address])))
            else:
                data = bytes(HexBytes(target.encode_abi("transfer", args=[env.roles.operator, 1])))
            allowed = which == "x" and not m.x_is_token
            run_execute(env, m, step, "operator", target.address, data, value, (0, 0),
                        allowed=allowed, trusted=method == "balanceOf")  # fmt: skip
        case Withdraw(caller, amount):
            value = amount.resolve(m)
            err = m.owner_gate(caller)
            if err is None and value == 0:
                err = Revert("ZeroAmount", ())
            if err is None and value > m.available():
                err = Revert("AmountExceedsBalance", (value, m.available()))
            call(w.withdraw(value), caller, err)
            step.payees = frozenset({owner})
            if err is None:
                step.expected = m.absorb()
                m.owner_funds += value
                m.balance -= value
                m.recorded = m.balance
                step.expected.append(
                    m.emit("Withdrawn", to=owner, amount=value, balanceAfter=m.balance)
                )
        case Extend(delta):
            new = min(max(m.expiry + delta, 0), UINT64_MAX)
            err = m.owner_gate("owner")
            if err is None and new <= m.expiry:
                err = Revert("ExpiryNotLater", (m.expiry, new))
            call(w.extend(new), "owner", err)
            if err is None:
                step.expected = m.absorb()
                step.expected.append(m.emit("Extended", previousExpiry=m.expiry, newExpiry=new,
                                            balanceAfter=m.balance))  # fmt: skip
                m.expiry = new
        case Revoke():
            err = m.owner_gate("owner") or (Revert("AlreadyRevoked", ()) if m.revoked else None)
            call(w.revoke(), "owner", err)
            if err is None:
                m.revoked = True
                step.expected = m.absorb()
                step.expected.append(
                    m.emit("Revoked", operator=env.roles.operator, balanceAfter=m.balance)
                )
        case Close(caller, reason):
            err = m.close_gate(caller, reason)
            call(w.close(reason), caller, err)
            close(env, m, step, caller, reason, err)
        case Sweep():
            err = m.close_gate("stranger", CloseReason.SWEPT)
            call(w.sweep(), "stranger", err)
            close(env, m, step, "stranger", CloseReason.SWEPT, err)
        case Donate(amount):
            fn = token.functions.transfer(env.wallet.address, amount)
            step.receipts.append(env.setup_tx(m, fn, env.roles.stranger))
            m.balance += amount
            m.donated += amount
        case Sync():
            err = (
                Revert("SessionIsClosed", ())
                if m.closed
                else Revert("NothingToSync", ())
                if m.balance == m.recorded
                else None
            )
            call(w.sync(), "stranger", err)
            if err is None:
                step.expected = m.absorb()
        case Admin(switch, on):
            x = env.extra.x.address
            if switch == "executePaused":
                m.execute_paused = on
                admin(factory.setExecutePaused(on))
            elif switch == "operatorTrusted":
                m.operator_trusted = on
                admin(factory.setTrustedOperator(env.roles.operator, on))
            elif switch == "playTrusted":
                m.play_trusted = on
                admin(factory.setTrustedCall(env.stack.game.address, PLAY, on))
            elif switch == "xIsToken":
                # a token is never a target and vice versa: undo one before doing the other
                m.x_is_token = on
                if on:
                    admin(factory.setTrustedCall(x, BALANCE_OF, False),
                          factory.setTrustedToken(x, True))  # fmt: skip
                else:
                    admin(factory.setTrustedToken(x, False),
                          factory.setTrustedCall(x, BALANCE_OF, True))  # fmt: skip
            else:  # the session's own token: only new sessions care
                admin(factory.setTrustedToken(token.address, on))
        case SetFee(bps):
            m.fee_bps = bps
            admin(factory.setFee(bps))
        case Warp(seconds):
            m.now += seconds
        case WarpToExpiry(offset):
            m.land_at = offset
    return step


def close(
    env: Env, m: Model, step: Step, caller: Role, reason: CloseReason, err: Revert | None
) -> None:
    """No fee on a close, not even on an inflow it finds: the owner gets it all."""
    step.payees = frozenset({env.roles.owner})
    if err is None:
        m.owner_funds += m.balance
        refund, m.balance, m.recorded, m.closed = m.balance, 0, 0, True
        step.expected = [m.emit("Closed", reason=int(reason), by=env.addr(caller),
                                refund=refund, balanceAfter=0)]  # fmt: skip


# -------------------------------------------------------------------------------- checks


@dataclass
class Audit:
    """What the chain alone says so far, kept apart from the model."""

    owner_start: int  # the owner's balance before the session was created
    targets_start: int  # tokens held by the allow-listed targets before the session
    treasury_start: int  # the treasury's balance before the session was created
    seq: int = 0  # seq of the last wallet event seen; creation is 0
    spent: int = 0  # sum of the `spent` fields of all Executed events


def normalized(revert: Revert | None) -> tuple[str, tuple[Any, ...]] | None:
    if revert is None:
        return None
    args = tuple(
        Web3.to_checksum_address(a) if isinstance(a, str) and Web3.is_address(a) else a
        for a in revert.args
    )
    return revert.name, args


@cache
def _selector(signature: str) -> str:
    return bytes(Web3.keccak(text=signature)[:4]).hex()


def view(chain: Chain, to: str, signature: str, *args: str, block: int | None = None) -> int:
    """A one-word view call (uint or bool; address arguments) as a raw eth_call: a run makes
    thousands of these, and web3's contract call costs over 10 times as much."""
    words = "".join(format(int(a, 16), "064x") for a in args)
    call = {"to": to, "data": f"0x{_selector(signature)}{words}"}
    return int(chain.anvil.rpc("eth_call", call, "latest" if block is None else hex(block)), 16)


def batch(chain: Chain, calls: list[tuple[str, str, str | None]]) -> list[dict[str, Any]]:
    """eth_calls (to, data, from) in one JSON-RPC batch request, each answered with its
    `result` or its `error`: a check makes a dozen, one round trip instead of twelve."""
    body = [
        {"jsonrpc": "2.0", "id": i, "method": "eth_call",
         "params": [{"to": to, "data": data, **({"from": sender} if sender else {})}, "latest"]}
        for i, (to, data, sender) in enumerate(calls)
    ]  # fmt: skip
    request = urllib.request.Request(
        chain.anvil.url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        answers: list[dict[str, Any]] = json.loads(resp.read())
    return sorted(answers, key=lambda a: int(a["id"]))


def encoded(signature: str, *args: str) -> str:
    return f"0x{_selector(signature)}" + "".join(format(int(a, 16), "064x") for a in args)


def now(chain: Chain) -> int:
    return int(chain.anvil.rpc("eth_getBlockByNumber", "latest", False)["timestamp"], 16)


WALLET_VIEWS = ("seq", "spent", "budget", "expiry", "revoked", "closed", "recordedBalance")
CLOSE_OWNER = "0x" + selector("close(uint8)").hex() + "00" * 32


def check(env: Env, m: Model, step: Step, audit: Audit) -> None:
    chain, wallet, token = env.chain, env.wallet, env.stack.token
    owner, treasury = env.roles.owner, env.roles.treasury
    targets = {*env.stack.targets, env.extra.x.address}

    def balance(who: str, block: int | None = None) -> int:
        return view(chain, token.address, "balanceOf(address)", who, block=block)

    # The prediction: the exact error, or success.
    assert normalized(step.revert) == normalized(step.expected_revert), (
        f"reverted with {step.revert}, model expected {step.expected_revert}"
    )

    # 5. The events with the next seqs for a successful wallet call, none otherwise.
    events = [ev for r in step.receipts for ev in chain.events(r, wallet)]
    assert [(ev["event"], dict(ev["args"])) for ev in events] == step.expected
    fees = 0
    for ev in events:
        assert ev["args"]["seq"] == audit.seq + 1
        audit.seq = ev["args"]["seq"]
        if ev["event"] == "Synced":
            fees += ev["args"]["fee"]
        if ev["event"] == "Executed":
            audit.spent += ev["args"]["spent"]
    if events:
        # 6. The last balanceAfter is the real balance at that block.
        last, block = events[-1], events[-1]["blockNumber"]
        assert last["args"]["balanceAfter"] == balance(wallet.address, block)
        if last["event"] == "Closed":
            # 4. Everything the wallet held went to the owner, and nothing is left.
            refund = last["args"]["refund"]
            assert balance(wallet.address, block - 1) == refund
            assert balance(owner, block) - balance(owner, block - 1) == refund
            assert balance(wallet.address, block) == 0

    # 3. Tokens leave the wallet only for the owner, the allow-listed target of an execute,
    # or the treasury (exactly the fees of this step's Synced); no allowance outlives the
    # call; spend stays within the budget.
    assert step.payees <= targets | {owner}
    to_treasury = 0
    for receipt in step.receipts:
        for log in chain.events(receipt, token):
            if log["event"] == "Transfer" and log["args"]["from"] == wallet.address:
                if log["args"]["to"] == treasury:
                    to_treasury += log["args"]["value"]
                else:
                    assert log["args"]["to"] in step.payees, f"wallet paid {log['args']}"
    assert to_treasury == fees
    # One round trip for the rest: the wallet's state, the balances, the allowance left,
    # and whether a close(Owner) from the owner would succeed now.
    holders = [wallet.address, owner, treasury, *env.stack.targets]
    calls: list[tuple[str, str, str | None]] = [
        *((wallet.address, encoded(f"{name}()"), None) for name in WALLET_VIEWS),
        *((token.address, encoded("balanceOf(address)", who), None) for who in holders),
        (wallet.address, CLOSE_OWNER, owner),
    ]
    if step.executed is not None:
        allowance = encoded("allowance(address,address)", wallet.address, step.executed)
        calls.append((token.address, allowance, None))
    answers = batch(chain, calls)
    close_answer = answers[len(WALLET_VIEWS) + len(holders)]
    words = [int(a["result"], 16) for a in answers if a is not close_answer]
    state = dict(zip(WALLET_VIEWS, words, strict=False))
    wallet_balance, owner_balance, treasury_balance, *target_balances = words[
        len(WALLET_VIEWS) : len(WALLET_VIEWS) + len(holders)
    ]
    if step.executed is not None:
        assert words[-1] == 0
    assert state["spent"] <= state["budget"]
    assert state["spent"] == audit.spent
    assert state["seq"] == audit.seq
    assert state == {
        "seq": m.seq,
        "spent": m.spent,
        "budget": m.budget,
        "expiry": m.expiry,
        "revoked": int(m.revoked),
        "closed": int(m.closed),
        "recordedBalance": m.recorded,
    }

    # 1. The balance, exactly.
    assert wallet_balance == m.balance

    # 2. Nothing lost, the fees are the treasury's, and the owner can take all of it back
    # while the session is open.
    assert owner_balance == m.owner_funds
    paid = m.owner_fees + m.found_fees
    total = owner_balance + wallet_balance + paid + m.net_to_targets - m.donated
    assert total == audit.owner_start
    assert treasury_balance - audit.treasury_start == paid
    assert sum(target_balances) - audit.targets_start == m.net_to_targets
    error = close_answer.get("error")
    would = None if error is None else decode_revert(error.get("data") or "0x")
    assert normalized(would) == (("SessionIsClosed", ()) if m.closed else None)


# ---------------------------------------------------------------------------------- test


@pytest.fixture(scope="module")
def extra(chain: Chain, stack: Stack, roles: Roles) -> Iterator[Extra]:
    """X, a trusted call target (balanceOf) the sessions list, and a token the registry
    refuses; taken away again after this module."""
    snap = chain.snapshot()
    x = chain.deploy("MockToken", "Target-like", "X")
    refused = chain.deploy("MockToken", "Refused", "NO")
    chain.send(stack.factory.functions.setTrustedCall(x.address, BALANCE_OF, True), roles.deployer)
    chain.send(refused.functions.mint(roles.owner, 10**9 * TOKEN), roles.deployer)
    try:
        yield Extra(x=x, refused=refused)
    finally:
        chain.revert_to(snap)


def refused_creation(
    chain: Chain, stack: Stack, roles: Roles, extra: Extra, spec: SessionSpec,
    params: dict[str, Any], salt: bytes, predicted: str,
) -> None:  # fmt: skip
    """A creation the factory must refuse: the exact error, and nothing moved."""
    token = stack.token if spec.token_trusted else extra.refused
    fee = ceil_fee(spec.deposit, spec.fee_bps)
    approve = token.functions.approve(stack.factory.address, spec.deposit + fee)
    assert chain.try_send_raw(approve, roles.owner)[1] is None
    owner_before = chain.balance(token, roles.owner)
    create = stack.factory.functions.createSession(as_tuple(params), salt)
    _, revert = chain.try_send_raw(create, roles.owner)
    expected = (
        ("FeeAboveMax", (spec.fee_bps, spec.max_fee_bps))
        if spec.token_trusted
        else ("UntrustedToken", (extra.refused.address,))
    )
    assert normalized(revert) == expected
    assert chain.balance(token, roles.owner) == owner_before
    assert chain.balance(stack.token, predicted) == spec.prefund
    assert bytes(chain.w3.eth.get_code(Web3.to_checksum_address(predicted))) == b""
    event(f"creation refused: {expected[0]}")


def run_example(
    chain: Chain, roles: Roles, stack: Stack, extra: Extra, spec: SessionSpec, ops: list[Op]
) -> None:
    token, factory = stack.token, stack.factory.functions

    def setup(fn: ContractFunction, sender: str) -> TxReceipt:
        receipt, revert = chain.try_send_raw(fn, sender)
        assert revert is None, f"setup transaction {fn.fn_name} reverted: {revert}"
        return receipt

    chain.set_next_timestamp(now(chain) + 1)
    setup(token.functions.mint(roles.stranger, STRANGER_FUNDS), roles.deployer)
    if spec.fee_bps != FEE_BPS:
        setup(factory.setFee(spec.fee_bps), roles.deployer)
    salt = next(_salts).to_bytes(32, "big")
    word = view(chain, stack.factory.address, "predictWallet(address,bytes32)", roles.owner,
                "0x" + salt.hex())  # fmt: skip
    predicted = Web3.to_checksum_address(f"0x{word:040x}")
    if spec.prefund:
        setup(token.functions.transfer(predicted, spec.prefund), roles.stranger)

    def holds(who: str) -> int:
        return view(chain, token.address, "balanceOf(address)", who)

    owner_start, treasury_start = holds(roles.owner), holds(roles.treasury)
    targets_start = sum(holds(t) for t in stack.targets)

    # Both transactions of the creation (approve, create) land at start or a second later.
    start = now(chain) + 1
    chain.set_next_timestamp(start)
    expiry = start + spec.expires_in
    params: dict[str, Any] = {
        "operator": roles.operator,
        "token": (token if spec.token_trusted else extra.refused).address,
        "deposit": spec.deposit,
        "expiry": expiry,
        "budget": spec.budget,
        "stopLoss": spec.stop_loss,
        "takeProfit": spec.take_profit,
        "policy": "berzerker",
        "targets": [*stack.targets, extra.x.address],
        "maxFeeBps": spec.max_fee_bps,
    }
    if not spec.token_trusted or spec.fee_bps > spec.max_fee_bps:
        refused_creation(chain, stack, roles, extra, spec, params, salt, predicted)
        return
    deposit_fee = ceil_fee(spec.deposit, spec.fee_bps)
    prefund_fee = ceil_fee(spec.prefund, spec.fee_bps)
    setup(token.functions.approve(stack.factory.address, spec.deposit + deposit_fee), roles.owner)
    receipt = setup(factory.createSession(as_tuple(params), salt), roles.owner)
    (created,) = chain.events(receipt, stack.factory)
    wallet = chain.at("SessionWallet", created["args"]["wallet"])
    balance = spec.deposit + spec.prefund - prefund_fee
    block = receipt["blockNumber"]
    assert created["args"]["wallet"] == wallet.address == predicted
    assert created["args"]["fee"] == deposit_fee + prefund_fee
    assert created["args"]["balanceAfter"] == balance
    assert view(chain, token.address, "balanceOf(address)", wallet.address, block=block) == balance
    assert created["args"]["stopLoss"] == spec.stop_loss
    assert created["args"]["takeProfit"] == spec.take_profit
    assert view(chain, wallet.address, "maxFeeBps()") == spec.max_fee_bps

    m = Model(
        now=now(chain),
        expiry=expiry,
        budget=spec.budget,
        balance=balance,
        recorded=balance,
        fee_bps=spec.fee_bps,
        max_fee_bps=spec.max_fee_bps,
        owner_fees=deposit_fee,
        found_fees=prefund_fee,
        owner_funds=owner_start - spec.deposit - deposit_fee,
        game_funds=holds(stack.game.address),
        donated=spec.prefund,
    )
    env = Env(chain, stack, roles, extra, wallet)
    audit = Audit(owner_start=owner_start, targets_start=targets_start,
                  treasury_start=treasury_start)  # fmt: skip
    check(env, m, Step(), audit)
    for i, op in enumerate(ops):
        expiry = m.expiry
        step = run(env, m, op)
        name = type(op).__name__
        outcome = step.expected_revert.name if step.expected_revert else "ok"
        note(f"step {i} at t={m.now} (expiry {expiry}): {op} -> {outcome}")
        # Labels for --hypothesis-show-statistics: which paths the run exercised.
        event(f"{name}: {outcome}")
        if any(ev == "Synced" and args["fee"] for ev, args in step.expected):
            event("an inflow paid its fee")
        if isinstance(op, Play | Hostile | Sweep | Close) and abs(m.now - expiry) <= 1:
            event(f"{name} at expiry{m.now - expiry:+d}: {outcome}")
        check(env, m, step, audit)


def _abs(n: int) -> Amount:
    return Amount("abs", 0, n)


OP: Role = "operator"
TOUR_EXECUTE: list[Op] = [
    Play(OP, _abs(10 * TOKEN), False, 0),  # spent 10 of 100
    Play(OP, Amount("budget", BPS, 1), False, 0),  # BudgetExceeded
    Play(OP, Amount("budget", BPS, 0), True, 20_000),  # a win: received, spent unchanged
    Play(OP, Amount("budget", BPS, 0), True, 5_000),  # a partial win: spent 45 more
    Play(OP, Amount("balance", BPS, 1), False, 0),  # AmountExceedsBalance
    Hostile("pullPart", _abs(50 * TOKEN), 9_000),  # spent 45 more, allowance reset
    Hostile("pullPart", _abs(50 * TOKEN), 11_000),  # ERC20InsufficientAllowance
    Hostile("pullExtra", _abs(1), 0),
    Hostile("pullTwice", _abs(0), 0),
    Hostile("pullNothing", _abs(TOKEN), 0),
    Hostile("attack", _abs(TOKEN), 2),  # ReentrancyGuardReentrantCall
    Hostile("pullPart", Amount("budget", BPS, 1), BPS),  # BudgetExceeded
    Admin("executePaused", True),
    Play(OP, _abs(1), False, 0),  # ExecutionPaused
    Admin("executePaused", False),
    Admin("operatorTrusted", False),
    Play(OP, _abs(1), False, 0),  # OperatorNotTrusted
    Close(OP, CloseReason.EXPIRED),  # needs no registry trust, nor expiry: ok
]
TOUR_REVOKE: list[Op] = [
    Play("owner", _abs(1), False, 0),  # NotOperator
    Admin("playTrusted", False),
    Play(OP, _abs(1), False, 0),  # CallNotAllowed: the registry dropped the game's play
    Admin("playTrusted", True),
    Untrusted(_abs(0)),  # TargetNotAllowed: not on the wallet's list
    Withdraw("owner", _abs(0)),  # ZeroAmount
    Withdraw("owner", Amount("balance", BPS, 1)),  # AmountExceedsBalance
    Withdraw(OP, _abs(1)),  # NotOwner
    Withdraw("owner", _abs(TOKEN)),
    Donate(3),
    Withdraw("owner", _abs(1)),  # records the donation first: Synced, fee 1 (rounded up)
    Sync(),  # NothingToSync
    Donate(TOKEN),
    Sync(),
    Sweep(),  # NotSweepable
    Close("stranger", CloseReason.SWEPT),  # NotSweepable
    Close("stranger", CloseReason.OWNER),  # NotOwner
    Close("owner", CloseReason.STOP_LOSS),  # NotOperator
    Revoke(),
    Revoke(),  # AlreadyRevoked
    Play(OP, _abs(1), False, 0),  # OperatorRevoked
    Close(OP, CloseReason.TAKE_PROFIT),  # OperatorRevoked
    Donate(5),
    Sweep(),  # revoked, so anyone may sweep; the donation goes to the owner without a fee
    Deposit(_abs(1)),  # SessionIsClosed from here on
    Withdraw("stranger", _abs(1)),
    Extend(1),
    Revoke(),
    Play(OP, _abs(0), False, 0),
    Close("owner", CloseReason.OWNER),
    Sweep(),
    Donate(1),
    Sync(),
]
TOUR_EXPIRY: list[Op] = [
    Deposit(_abs(0)),  # ZeroAmount
    Deposit(_abs(3)),
    Extend(0),  # ExpiryNotLater
    Extend(-1),  # ExpiryNotLater
    WarpToExpiry(-1),
    Play(OP, _abs(1), False, 0),  # setOutcome, then execute at expiry - 1: ok
    Hostile("pullNothing", _abs(0), 0),  # at expiry: SessionExpired
    Extend(5),  # at expiry + 1: the session runs again, to expiry + 5
    Hostile("pullPart", _abs(2), BPS),  # ok
    Sweep(),  # NotSweepable: not expired any more
    WarpToExpiry(0),
    Sweep(),  # at the new expiry: expired, so anyone may sweep
]
TOUR_FUNDS: list[Op] = [
    Play(OP, _abs(1_000 * TOKEN), True, 10**10),  # wins all the game holds (10**9 tokens)
    Deposit(Amount("balance", BPS, 0)),  # more than the owner has: ERC20InsufficientBalance
    # all the owner has, but not the fee on top: ERC20InsufficientBalance(owner, 0, fee)
    Deposit(Amount("owner", BPS, 0)),
    Withdraw("owner", Amount("balance", BPS, 0)),
    Play(OP, _abs(TOKEN), True, 10**30),  # more than the game has: ERC20InsufficientBalance
    Close("owner", CloseReason.OWNER),  # refund 0, no transfer
]
TOUR_FEES: list[Op] = [
    Deposit(_abs(99)),  # fee 1, rounded up
    Deposit(_abs(TOKEN), -1),  # FeeAboveMax: consents to less than the fee
    SetFee(150),  # above the creator's 100
    Deposit(_abs(TOKEN)),  # consents to 150 for this top-up: ok, fee 150 bps
    Deposit(_abs(TOKEN), -51),  # FeeAboveMax(150, 99)
    Donate(12_345),
    Play(OP, _abs(TOKEN), False, 0),  # Synced at the creator's 100 bps (124), then Executed
    Donate(7),
    Extend(10),  # Synced (1), then Extended
    Donate(1),
    Hostile("pullPart", Amount("balance", BPS, 0), BPS),  # AmountExceedsBalance after the fee
    Donate(1),
    Revoke(),  # Synced, then Revoked
    SetFee(0),
    Donate(500),
    Sync(),  # fee 0
    Deposit(_abs(10)),  # fee 0
    Admin("tokenTrusted", False),  # new sessions only: this one goes on
    Withdraw("owner", _abs(10)),
    Close("owner", CloseReason.OWNER),
]
TOUR_TOKENS: list[Op] = [
    TokenCall("session", "balanceOf", _abs(0)),  # TargetNotAllowed: the session's token
    TokenCall("x", "balanceOf", _abs(TOKEN)),  # a trusted call: ok, approved and reset
    TokenCall("x", "transfer", _abs(0)),  # CallNotAllowed: transfer is not trusted
    Play(OP, _abs(1), False, 0, "setOutcome"),  # CallNotAllowed: would rig the game
    Play(OP, _abs(1), False, 0, "short", 3),  # CallNotAllowed: 3 bytes, zero-padded
    Play(OP, _abs(1), False, 0, "short", 0),  # CallNotAllowed: no data at all
    Admin("xIsToken", True),
    TokenCall("x", "balanceOf", _abs(0)),  # TargetNotAllowed: X is a registry token now
    TokenCall("x", "transfer", _abs(0)),  # TargetNotAllowed, before the selector
    Admin("xIsToken", False),
    Donate(TOKEN),
    TokenCall("x", "balanceOf", _abs(0)),  # Synced, then Executed
    Close(OP, CloseReason.IDLE),
]


# ~0.1 s a sequence on 2 loaded cores: the default 600 s is for 200, not for 10,000
@pytest.mark.timeout(max(600, EXAMPLES // 2))
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(spec=session_specs(), ops=sequences)
# Fixed tours run first, so that every revert path of the model is taken in every run.
@example(spec=SessionSpec(1_000 * TOKEN, 100 * TOKEN, 1_000, 0, 0), ops=TOUR_EXECUTE)
@example(spec=SessionSpec(5 * TOKEN, 0, 1_000, TOKEN, 0), ops=TOUR_REVOKE)
@example(spec=SessionSpec(7, 7, 10, 0, 0), ops=TOUR_EXPIRY)
@example(spec=SessionSpec(1_000 * TOKEN, 0, 1_000, 0, 0), ops=TOUR_FUNDS)
@example(spec=SessionSpec(99, 10 * TOKEN, 1_000, 0, 0, prefund=999), ops=TOUR_FEES)
@example(spec=SessionSpec(TOKEN, TOKEN, 1_000, 0, 0, 0, 0), ops=TOUR_TOKENS)
@example(spec=SessionSpec(TOKEN, 0, 1_000, 0, 0, 150, 100), ops=[])  # FeeAboveMax
@example(spec=SessionSpec(TOKEN, 0, 1_000, 0, 0, token_trusted=False), ops=[])  # Untrusted
def test_random_operation_sequences_match_the_model(
    chain: Chain, roles: Roles, stack: Stack, extra: Extra, spec: SessionSpec, ops: list[Op]
) -> None:
    snap = chain.snapshot()
    try:
        run_example(chain, roles, stack, extra, spec, ops)
    finally:
        chain.revert_to(snap)
