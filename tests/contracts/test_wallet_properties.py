"""Property test: random sequences of session operations against a real SessionWallet.

Each example opens a session with random parameters (deposit, budget below, equal to or
above it or 0, expiry, thresholds) on the real anvil and runs a random sequence of about
1-12 operations: top-up, operator executes on the TestGame (loss, win, partial win), on
allow-listed hostile targets (over-pulling, re-entering) and on a game that is not
allow-listed, calls by the wrong role, withdraw, extend, revoke, close with every reason
by owner, operator and stranger, sweep, plain-transfer donations, sync, registry
switches (pause, distrust operator or game), and time warps, some landing a call exactly
on the expiry or one second either side. A pure-Python model, mirroring the check order
of SessionWallet.sol, predicts every step: success with the exact event and state, or
the exact custom error (name and arguments); the prediction must equal the real
transaction's outcome. Fixed tours (@example) take every revert path in every run.
After every step, on chain:

1. The wallet's token balance equals the model's, exactly (Python ints, never floats).
2. The owner can always recover the unspent funds: while the session is open a
   close(Owner) from the owner would succeed, and nothing is lost:
   owner + wallet + fee + net tokens lost to targets - donations == owner's balance
   before the session was created.
3. The operator moves tokens only into allow-listed targets, during execute, within the
   budget: every Transfer out of the wallet goes to the owner (withdraw, close, sweep) or
   to the executed allow-listed target; no allowance is left behind; spent() <= budget(),
   spent() equals the model and the sum of the `spent` fields of all Executed events.
4. A close empties the wallet: balance 0, and the owner's balance rose by exactly the
   refund in `Closed`, which is the balance the wallet held before the close.
5. Sequence numbers rise by exactly one: a successful wallet call emits exactly one
   wallet event with seq == previous + 1 (creation is 0); anything else emits none.
6. Every wallet event's balanceAfter equals balanceOf(wallet) at that event's block.

Run more sequences with WARDEN_PROPERTY_EXAMPLES=2000.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from hexbytes import HexBytes
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from chain.reverts import Revert
from tests._chain import Chain, CloseReason
from tests.conftest import TOKEN, Roles, Stack, create_session, session_params

EXAMPLES = int(os.environ.get("WARDEN_PROPERTY_EXAMPLES", "200"))
BPS = 10_000
UINT64_MAX = 2**64 - 1
STRANGER_FUNDS = 10**6 * TOKEN
_salts = itertools.count(1)

Role = Literal["owner", "operator", "stranger"]
Expected = tuple[str, dict[str, Any]]  # (event name, exact args)


# ---------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class Amount:
    """An amount relative to the state when the step runs, so that edges are hit often:
    `abs` is `delta`; `balance` and `budget` (what is left of it) are scaled by `bps`,
    then `delta` is added (never below 0)."""

    base: Literal["abs", "balance", "budget"]
    bps: int
    delta: int

    def resolve(self, m: Model) -> int:
        if self.base == "abs":
            return self.delta
        ref = m.balance if self.base == "balance" else max(m.budget - m.spent, 0)
        return max(ref * self.bps // BPS + self.delta, 0)


@dataclass(frozen=True)
class Deposit:  # owner approves the wallet, then tops up
    amount: Amount


@dataclass(frozen=True)
class Play:  # game.setOutcome(win, multiplierBps), then execute(game, play(wager), wager)
    caller: Role
    wager: Amount
    win: bool
    multiplier_bps: int


@dataclass(frozen=True)
class Hostile:  # operator executes an allow-listed hostile target
    call: Literal["pullPart", "pullExtra", "pullTwice", "pullNothing", "attack"]
    amount: Amount
    arg: int  # pullPart: bps of `amount` pulled (above 10_000 pulls too much); attack: mode


@dataclass(frozen=True)
class Untrusted:  # operator executes a real game that is not on the wallet's allow-list
    wager: Amount


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


@dataclass(frozen=True)
class Admin:  # the factory owner flips a registry switch
    switch: Literal["executePaused", "operatorTrusted", "gameTrusted"]
    on: bool


@dataclass(frozen=True)
class Warp:
    seconds: int


@dataclass(frozen=True)
class WarpToExpiry:
    """Skip time so that the next operation's wallet call (or its only transaction) is
    mined at expiry + offset."""

    offset: int


Op = (
    Deposit | Play | Hostile | Untrusted | Withdraw | Extend | Revoke | Close | Sweep | Donate
    | Sync | Admin | Warp | WarpToExpiry
)  # fmt: skip


def amounts(*bases: Literal["balance", "budget"]) -> st.SearchStrategy[Amount]:
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


def plays() -> st.SearchStrategy[Play]:
    return st.builds(
        Play,
        st.sampled_from(["operator", "operator", "operator", "owner", "stranger"]),
        amounts("balance", "budget"),
        st.booleans(),
        st.one_of(st.sampled_from([0, 5_000, BPS, 20_000, 10**30]), st.integers(0, 40_000)),
    )


def hostiles() -> st.SearchStrategy[Hostile]:
    return st.builds(
        Hostile,
        st.sampled_from(["pullPart", "pullExtra", "pullTwice", "pullNothing", "attack"]),
        amounts("balance", "budget"),
        st.one_of(st.integers(0, 4), st.integers(0, 12_000)),
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


def timed() -> st.SearchStrategy[Op]:
    """Operations whose outcome depends on the expiry."""
    return st.one_of(plays(), hostiles(), st.just(Sweep()), closes())


# A move is one operation or a pair that belongs together. one_of picks a branch uniformly;
# distinct copies of a strategy weight it (the same object listed twice counts once).
moves: st.SearchStrategy[tuple[Op, ...]] = st.one_of(
    one(st.builds(Deposit, amounts("balance"))),
    *[one(plays()) for _ in range(4)],
    *[one(hostiles()) for _ in range(2)],
    one(st.builds(Untrusted, amounts("balance"))),
    *[one(withdrawals()) for _ in range(2)],
    one(st.builds(Extend, st.one_of(st.sampled_from([-10, -1, 0, 1, 2]), st.integers(1, 10**6)))),
    one(st.just(Revoke())),
    *[one(closes()) for _ in range(2)],
    one(st.just(Sweep())),
    one(donations()),
    st.tuples(donations(), st.just(Sync())),
    one(st.just(Sync())),
    one(
        st.builds(
            Admin,
            st.sampled_from(["executePaused", "operatorTrusted", "gameTrusted"]),
            st.booleans(),
        )
    ),
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
    return SessionSpec(deposit, budget, expires_in, stop_loss, take_profit)


# --------------------------------------------------------------------------------- model


@dataclass
class Model:
    """What the wallet (and the registry switches it reads) must look like."""

    now: int  # timestamp of the last block; the next transaction is mined at now + 1
    expiry: int
    budget: int
    balance: int  # token.balanceOf(wallet)
    recorded: int  # recordedBalance
    fee: int
    owner_funds: int  # token.balanceOf(owner)
    game_funds: int  # token.balanceOf(game): it can only pay out what it holds
    spent: int = 0
    seq: int = 0
    revoked: bool = False
    closed: bool = False
    execute_paused: bool = False
    operator_trusted: bool = True
    game_trusted: bool = True
    net_to_targets: int = 0  # tokens the wallet lost to targets, minus what it won back
    donated: int = 0
    land_at: int | None = None  # set by WarpToExpiry

    def emit(self, name: str, **args: Any) -> Expected:
        self.seq += 1
        return name, {"seq": self.seq, **args}

    def owner_gate(self, caller: Role) -> Revert | None:
        """whileOpen, then onlyOwner."""
        if self.closed:
            return Revert("SessionIsClosed", ())
        if caller != "owner":
            return Revert("NotOwner", ())
        return None

    def execute_gate(
        self, caller: Role, operator: str, target: str, allowed: bool, amount: int
    ) -> Revert | None:
        """Every check of `execute` before the target is called, in the contract's order."""
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
        if amount > self.balance:
            return Revert("AmountExceedsBalance", (amount, self.balance))
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


@dataclass
class Env:
    chain: Chain
    stack: Stack
    roles: Roles
    wallet: Contract

    def addr(self, role: Role) -> str:
        return str(getattr(self.roles, role))

    def send(self, m: Model, fn: ContractFunction, sender: str) -> tuple[TxReceipt, Revert | None]:
        """Every transaction is mined exactly one second after the previous block."""
        m.now += 1
        self.chain.set_next_timestamp(m.now)
        return self.chain.try_send(fn, sender)

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
    expected: Expected | None = None  # the one wallet event a success must emit
    payees: frozenset[str] = frozenset()  # who may receive tokens from the wallet
    executed: str | None = None  # target of an execute call: no allowance may be left


def run_execute(
    env: Env,
    m: Model,
    step: Step,
    caller: Role,
    target: Contract,
    data: str,
    amount: int,
    outcome: tuple[int, int] | Revert,
) -> None:
    """Send execute(target, data, amount); `outcome` is what the call does when reached:
    (tokens the target pulls, tokens it pays back) or the revert it bubbles up."""
    allowed = target.address in env.stack.targets and (
        target.address != env.stack.game.address or m.game_trusted
    )
    err = m.execute_gate(caller, env.roles.operator, target.address, allowed, amount)
    if err is None and isinstance(outcome, Revert):
        err = outcome
    if err is None:
        assert not isinstance(outcome, Revert)
        pulled, paid = outcome
        spent_now, received = max(pulled - paid, 0), max(paid - pulled, 0)
        total = m.spent + spent_now
        if total > m.budget:
            err = Revert("BudgetExceeded", (total, m.budget))
    fn = env.wallet.functions.execute(target.address, data, amount)
    receipt, step.revert = env.send(m, fn, env.addr(caller))
    step.receipts.append(receipt)
    step.expected_revert, step.executed = err, target.address
    step.payees = frozenset({target.address}) if allowed else frozenset()
    if err is None:
        m.spent = total
        m.balance += paid - pulled
        m.recorded = m.balance
        m.net_to_targets += pulled - paid
        step.expected = m.emit(
            "Executed",
            target=target.address,
            selector=bytes(HexBytes(data)[:4]),
            approved=amount,
            spent=spent_now,
            received=received,
            totalSpent=total,
            balanceAfter=m.balance,
        )


def run(env: Env, m: Model, op: Op) -> Step:
    """Apply one operation to the chain and the model; return what to check."""
    step = Step()
    w, token, owner = env.wallet.functions, env.stack.token, env.roles.owner
    if m.land_at is not None:  # after a WarpToExpiry, skip the seconds in between
        first_tx = m.expiry + m.land_at - (1 if isinstance(op, Deposit | Play) else 0)
        m.now, m.land_at = max(m.now, first_tx - 1), None

    def call(fn: ContractFunction, caller: Role, err: Revert | None) -> None:
        receipt, step.revert = env.send(m, fn, env.addr(caller))
        step.receipts.append(receipt)
        step.expected_revert = err

    match op:
        case Deposit(amount):
            value = amount.resolve(m)
            step.receipts.append(
                env.setup_tx(m, token.functions.approve(env.wallet.address, value), owner)
            )
            err = m.owner_gate("owner") or (Revert("ZeroAmount", ()) if value == 0 else None)
            if err is None and value > m.owner_funds:
                err = Revert("ERC20InsufficientBalance", (owner, m.owner_funds, value))
            call(w.deposit(value), "owner", err)
            if err is None:
                m.owner_funds -= value
                m.balance += value
                m.recorded = m.balance
                step.expected = m.emit(
                    "Deposited", **{"from": owner}, amount=value, balanceAfter=m.balance
                )
        case Play(caller, wager, win, multiplier):
            value = wager.resolve(m)
            game = env.stack.game
            step.receipts.append(
                env.setup_tx(m, game.functions.setOutcome(win, multiplier), env.roles.deployer)
            )
            paid = value * multiplier // BPS if win else 0
            data = game.encode_abi("play", args=[value])
            outcome: tuple[int, int] | Revert = (value, paid)
            if paid > m.game_funds + value:
                funds = m.game_funds + value
                outcome = Revert("ERC20InsufficientBalance", (game.address, funds, paid))
            run_execute(env, m, step, caller, game, data, value, outcome)
            if step.expected is not None:
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
            run_execute(env, m, step, "operator", target, data, value, outcome)
        case Untrusted(wager):
            value = wager.resolve(m)
            game = env.stack.untrusted_game
            data = game.encode_abi("play", args=[value])
            run_execute(env, m, step, "operator", game, data, value, (value, 0))
        case Withdraw(caller, amount):
            value = amount.resolve(m)
            err = m.owner_gate(caller)
            if err is None and value == 0:
                err = Revert("ZeroAmount", ())
            if err is None and value > m.balance:
                err = Revert("AmountExceedsBalance", (value, m.balance))
            call(w.withdraw(value), caller, err)
            step.payees = frozenset({owner})
            if err is None:
                m.owner_funds += value
                m.balance -= value
                m.recorded = m.balance
                step.expected = m.emit("Withdrawn", to=owner, amount=value, balanceAfter=m.balance)
        case Extend(delta):
            new = min(max(m.expiry + delta, 0), UINT64_MAX)
            err = m.owner_gate("owner")
            if err is None and new <= m.expiry:
                err = Revert("ExpiryNotLater", (m.expiry, new))
            call(w.extend(new), "owner", err)
            if err is None:
                m.recorded = m.balance
                step.expected = m.emit(
                    "Extended", previousExpiry=m.expiry, newExpiry=new, balanceAfter=m.balance
                )
                m.expiry = new
        case Revoke():
            err = m.owner_gate("owner") or (Revert("AlreadyRevoked", ()) if m.revoked else None)
            call(w.revoke(), "owner", err)
            if err is None:
                m.revoked = True
                m.recorded = m.balance
                step.expected = m.emit(
                    "Revoked", operator=env.roles.operator, balanceAfter=m.balance
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
                step.expected = m.emit("Synced", previousBalance=m.recorded, balanceAfter=m.balance)
                m.recorded = m.balance
        case Admin(switch, on):
            factory = env.stack.factory.functions
            if switch == "executePaused":
                fn, m.execute_paused = factory.setExecutePaused(on), on
            elif switch == "operatorTrusted":
                fn, m.operator_trusted = factory.setTrustedOperator(env.roles.operator, on), on
            else:
                fn, m.game_trusted = factory.setTrustedTarget(env.stack.game.address, on), on
            step.receipts.append(env.setup_tx(m, fn, env.roles.deployer))
        case Warp(seconds):
            m.now += seconds
        case WarpToExpiry(offset):
            m.land_at = offset
    return step


def close(
    env: Env, m: Model, step: Step, caller: Role, reason: CloseReason, err: Revert | None
) -> None:
    step.payees = frozenset({env.roles.owner})
    if err is None:
        m.owner_funds += m.balance
        refund, m.balance, m.recorded, m.closed = m.balance, 0, 0, True
        step.expected = m.emit(
            "Closed", reason=int(reason), by=env.addr(caller), refund=refund, balanceAfter=0
        )


# -------------------------------------------------------------------------------- checks


@dataclass
class Audit:
    """What the chain alone says so far, kept apart from the model."""

    owner_start: int  # the owner's balance before the session was created
    targets_start: int  # tokens held by the allow-listed targets before the session
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


def view(chain: Chain, to: str, signature: str, *args: str) -> int:
    """A one-word view call (uint or bool; address arguments) as a raw eth_call: a run makes
    thousands of these, and web3's contract call costs over 10 times as much."""
    words = "".join(format(int(a, 16), "064x") for a in args)
    call = {"to": to, "data": f"0x{_selector(signature)}{words}"}
    return int(chain.anvil.rpc("eth_call", call, "latest"), 16)


WALLET_VIEWS = ("seq", "spent", "budget", "expiry", "revoked", "closed", "recordedBalance")


def check(env: Env, m: Model, step: Step, audit: Audit) -> None:
    chain, wallet, token = env.chain, env.wallet, env.stack.token
    owner, targets = env.roles.owner, set(env.stack.targets)

    def balance(who: str) -> int:
        return view(chain, token.address, "balanceOf(address)", who)

    # The prediction: the exact error, or success.
    assert normalized(step.revert) == normalized(step.expected_revert), (
        f"reverted with {step.revert}, model expected {step.expected_revert}"
    )

    # 5. One event with the next seq for a successful wallet call, none otherwise.
    events = [ev for r in step.receipts for ev in chain.events(r, wallet)]
    if step.expected is None:
        assert events == [], f"unexpected wallet events {events}"
    else:
        assert len(events) == 1, f"expected exactly one wallet event, got {events}"
        (ev,) = events
        assert (ev["event"], dict(ev["args"])) == step.expected
        assert ev["args"]["seq"] == audit.seq + 1
        audit.seq = ev["args"]["seq"]
        block = ev["blockNumber"]
        # 6. balanceAfter is the real balance at that block.
        assert ev["args"]["balanceAfter"] == chain.balance(token, wallet.address, block)
        if ev["event"] == "Executed":
            audit.spent += ev["args"]["spent"]
        if ev["event"] == "Closed":
            # 4. Everything the wallet held went to the owner, and nothing is left.
            refund = ev["args"]["refund"]
            assert chain.balance(token, wallet.address, block - 1) == refund
            rise = chain.balance(token, owner, block) - chain.balance(token, owner, block - 1)
            assert rise == refund
            assert chain.balance(token, wallet.address, block) == 0

    # 3. Tokens leave the wallet only for the owner, or for the allow-listed target of an
    # execute; no allowance outlives the call; spend stays within the budget.
    assert step.payees <= targets | {owner}
    for receipt in step.receipts:
        for log in chain.events(receipt, token):
            if log["event"] == "Transfer" and log["args"]["from"] == wallet.address:
                assert log["args"]["to"] in step.payees, f"wallet paid {log['args']}"
    if step.executed is not None:
        allowance = "allowance(address,address)"
        assert view(chain, token.address, allowance, wallet.address, step.executed) == 0
    state = {name: view(chain, wallet.address, f"{name}()") for name in WALLET_VIEWS}
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
    wallet_balance = balance(wallet.address)
    assert wallet_balance == m.balance

    # 2. Nothing lost, and the owner can take all of it back while the session is open.
    owner_balance = balance(owner)
    assert owner_balance == m.owner_funds
    total = owner_balance + wallet_balance + m.fee + m.net_to_targets - m.donated
    assert total == audit.owner_start
    assert sum(balance(t) for t in env.stack.targets) - audit.targets_start == m.net_to_targets
    would = chain.call_revert(wallet.functions.close(CloseReason.OWNER), owner)
    assert normalized(would) == (("SessionIsClosed", ()) if m.closed else None)


# ---------------------------------------------------------------------------------- test


def run_example(chain: Chain, roles: Roles, stack: Stack, spec: SessionSpec, ops: list[Op]) -> None:
    token = stack.token
    t0 = chain.now()
    chain.set_next_timestamp(t0 + 1)
    chain.send(token.functions.mint(roles.stranger, STRANGER_FUNDS), roles.deployer)
    owner_start = chain.balance(token, roles.owner)
    targets_start = sum(chain.balance(token, t) for t in stack.targets)

    # Both transactions of create_session (approve, create) land at t0 + 2 or a second later.
    chain.set_next_timestamp(t0 + 2)
    params = session_params(
        chain,
        stack,
        roles,
        deposit=spec.deposit,
        budget=spec.budget,
        expiry=t0 + 2 + spec.expires_in,
        stopLoss=spec.stop_loss,
        takeProfit=spec.take_profit,
    )
    session = create_session(chain, stack, roles.owner, params, next(_salts).to_bytes(32, "big"))
    wallet = session.wallet
    (created,) = chain.events(session.receipt, stack.factory)
    fee = stack.factory.functions.feeFor(spec.deposit).call()
    block = session.receipt["blockNumber"]
    assert created["args"]["fee"] == fee
    assert created["args"]["balanceAfter"] == spec.deposit
    assert chain.balance(token, wallet.address, block) == spec.deposit
    assert created["args"]["stopLoss"] == spec.stop_loss
    assert created["args"]["takeProfit"] == spec.take_profit

    m = Model(
        now=chain.now(),
        expiry=params["expiry"],
        budget=spec.budget,
        balance=spec.deposit,
        recorded=spec.deposit,
        fee=fee,
        owner_funds=owner_start - spec.deposit - fee,
        game_funds=chain.balance(token, stack.game.address),
    )
    env = Env(chain, stack, roles, wallet)
    audit = Audit(owner_start=owner_start, targets_start=targets_start)
    check(env, m, Step(), audit)
    for i, op in enumerate(ops):
        expiry = m.expiry
        step = run(env, m, op)
        name = type(op).__name__
        outcome = step.expected_revert.name if step.expected_revert else "ok"
        note(f"step {i} at t={m.now} (expiry {expiry}): {op} -> {outcome}")
        # Labels for --hypothesis-show-statistics: which paths the run exercised.
        event(f"{name}: {outcome}")
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
    Admin("gameTrusted", False),
    Play(OP, _abs(1), False, 0),  # TargetNotAllowed: the registry dropped the game
    Admin("gameTrusted", True),
    Untrusted(_abs(0)),  # TargetNotAllowed: not on the wallet's list
    Withdraw("owner", _abs(0)),  # ZeroAmount
    Withdraw("owner", Amount("balance", BPS, 1)),  # AmountExceedsBalance
    Withdraw(OP, _abs(1)),  # NotOwner
    Withdraw("owner", _abs(TOKEN)),
    Donate(3),
    Withdraw("owner", _abs(1)),  # records the donation too
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
    Sweep(),  # revoked, so anyone may sweep
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
    Play(OP, _abs(TOKEN), True, 10**30),  # more than the game has: ERC20InsufficientBalance
    Withdraw("owner", Amount("balance", BPS, 0)),
    Close("owner", CloseReason.OWNER),  # refund 0, no transfer
]


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
def test_random_operation_sequences_match_the_model(
    chain: Chain, roles: Roles, stack: Stack, spec: SessionSpec, ops: list[Op]
) -> None:
    snap = chain.snapshot()
    try:
        run_example(chain, roles, stack, spec, ops)
    finally:
        chain.revert_to(snap)
