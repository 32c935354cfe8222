"""A deterministic random workload of real session activity on a test anvil.

`Workload` drives real transactions through the deployed stack (tests/conftest.py): it
opens sessions and tops them up, lets the operator play the TestGame, withdraws, extends,
revokes, closes (owner, operator policy reasons, sweeps after expiry or revocation), makes
plain token transfers into wallets (synced or not), recovers late transfers after a close,
makes the look-alike contract emit every fake session event, mines empty blocks and jumps
in time. It keeps a light model of each session it opened, refreshed from the chain after
every action, and only ever picks actions that are valid in the current state, so nothing
should revert (a revert is recorded in `reverts`, for the test to fail on).

Chain time is the workload's own: every transaction it sends gets an explicit block
timestamp, so the same seed gives the same actions, amounts and outcomes on any run that
starts from the same chain state.

    wl = Workload(chain, stack, roles, random.Random(7))
    wl.run(150)          # -> ["create 0x12ab.. by owner deposit=...", ...]
    wl.counts["execute"], wl.sessions, wl.receipts
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import TxReceipt

from chain.reverts import Revert
from tests._chain import Chain, CloseReason
from tests.conftest import TOKEN, Roles, Stack, as_tuple

UINT256_MAX = 2**256 - 1
BPS = 10_000
POLICIES = ("berzerker", "merchant", "disciple", "")
OPERATOR_REASONS = (
    CloseReason.STOP_LOSS,
    CloseReason.TAKE_PROFIT,
    CloseReason.EXPIRED,
    CloseReason.IDLE,
)
SWEEP_WAIT = 2 * 3_600  # sweep_expired waits at most this long for an expiry
MAX_OPEN = 24  # enough sessions to interleave, few enough that each sees many events
# A dedicated owner for huge amounts (anvil's seventh account), funded once.
WHALE_INDEX = 6
WHALE_FUNDS = 2**255 + 2**80
HUGE_DEPOSIT = 2**255 - 2**70

# Relative weights of the actions; only valid ones are drawn.
WEIGHTS: dict[str, int] = {
    "create": 10,
    "deposit": 10,
    "execute": 24,
    "withdraw": 8,
    "extend": 6,
    "revoke": 3,
    "close_owner": 3,
    "close_operator": 4,
    "sweep_expired": 2,
    "sweep_revoked": 3,
    "donate": 3,
    "donate_sync": 4,
    "recover": 3,
    "spoof": 2,
    "mine": 4,
    "time_jump": 3,
}
ACTIONS: tuple[str, ...] = tuple(WEIGHTS)


@dataclass
class SessionModel:
    """What the workload knows of one session it opened (refreshed from the chain)."""

    wallet: Contract
    owner: str
    expiry: int
    budget: int
    huge: bool  # amounts near 2**255
    balance: int = 0
    spent: int = 0
    revoked: bool = False
    closed: bool = False


@dataclass(frozen=True)
class Record:
    """One action and the receipts of the transactions it sent (none for empty blocks)."""

    action: str
    description: str
    receipts: tuple[TxReceipt, ...]
    wallet: str | None = None


class Workload:
    """Random valid session activity; see the module docstring."""

    def __init__(
        self,
        chain: Chain,
        stack: Stack,
        roles: Roles,
        rng: random.Random,
        *,
        big_amounts: bool = False,
        weights: dict[str, int] | None = None,
    ) -> None:
        self.chain = chain
        self.stack = stack
        self.roles = roles
        self.rng = rng
        self.big_amounts = big_amounts
        self.weights = dict(weights or WEIGHTS)
        self.whale = chain.accounts[WHALE_INDEX]
        self.names: dict[str, str] = {
            roles.owner: "owner",
            roles.owner2: "owner2",
            self.whale: "whale",
        }
        self.models: dict[str, SessionModel] = {}
        self.counts: Counter[str] = Counter()
        self.records: list[Record] = []
        self.reverts: list[tuple[str, Revert]] = []
        self.start_block = chain.w3.eth.block_number + 1
        self.clock = chain.now()
        self._salt = 0
        self._whale_funded = False
        self._huge_created = False
        self._receipts: list[TxReceipt] = []

    # ------------------------------------------------------------------ public

    @property
    def sessions(self) -> list[str]:
        """Wallet addresses of the sessions this workload opened, in creation order."""
        return list(self.models)

    @property
    def receipts(self) -> list[tuple[str, TxReceipt]]:
        return [(r.action, rc) for r in self.records for rc in r.receipts]

    def run(self, n: int) -> list[str]:
        return [self.step() for _ in range(n)]

    def step(self) -> str:
        """Perform one valid action; return a short description of it."""
        valid = [a for a in ACTIONS if self.weights.get(a, 0) > 0 and self._valid(a)]
        untried = [a for a in valid if self.counts[a] == 0]
        if untried and self.rng.random() < 0.25:
            action = self.rng.choice(untried)  # coverage: every kind shows up early
        else:
            action = self.rng.choices(valid, weights=[self.weights[a] for a in valid])[0]
        self._receipts = []
        description, wallet = getattr(self, f"_do_{action}")()
        self.counts[action] += 1
        self.records.append(Record(action, description, tuple(self._receipts), wallet))
        return f"{action}: {description}"

    # ------------------------------------------------------------- validity

    def _open(self) -> list[SessionModel]:
        return [m for m in self.models.values() if not m.closed]

    def _operable(self) -> list[SessionModel]:
        """Open sessions the operator may execute on for the next two transactions."""
        return [
            m
            for m in self._open()
            if not m.revoked and m.expiry > self.clock + 40 and m.balance > 0 and m.spent < m.budget
        ]

    def _valid(self, action: str) -> bool:
        open_ = self._open()
        match action:
            case "create":
                return len(open_) < MAX_OPEN
            case "deposit" | "extend" | "close_owner" | "donate" | "donate_sync":
                return bool(open_)
            case "withdraw":
                return any(m.balance > 0 for m in open_)
            case "execute":
                return bool(self._operable())
            case "revoke" | "close_operator":
                return any(not m.revoked for m in open_)
            case "sweep_expired":  # a short wait at most, so that time is not used up
                return any(not m.revoked and m.expiry <= self.clock + SWEEP_WAIT for m in open_)
            case "sweep_revoked":
                return any(m.revoked for m in open_)
            case "recover":
                return any(m.closed for m in self.models.values())
            case _:
                return True

    # ---------------------------------------------------------- transactions

    def _tx(self, fn: ContractFunction, sender: str) -> TxReceipt:
        """Send at the workload's next timestamp; record the receipt and any revert."""
        self.clock += self.rng.randint(1, 15)
        self.chain.set_next_timestamp(self.clock)
        receipt, revert = self.chain.try_send(fn, sender)
        if revert is not None:
            self.reverts.append((fn.fn_name, revert))
        self._receipts.append(receipt)
        return receipt

    def _refresh(self, m: SessionModel) -> None:
        w = m.wallet.functions
        m.balance = self.chain.balance(self.stack.token, m.wallet.address)
        m.spent = int(w.spent().call())
        m.expiry = int(w.expiry().call())
        m.revoked = bool(w.revoked().call())
        m.closed = bool(w.closed().call())

    def _pick(self, models: Sequence[SessionModel]) -> SessionModel:
        return self.rng.choice(list(models))

    def _amount(self, m: SessionModel, scale: int) -> int:
        """A top-up or donation amount, near 2**63 / 2**64 for huge-mode sessions."""
        if m.owner == self.whale:
            return self.rng.choice((2**63, 2**64, 2**64 - 1)) + self.rng.randint(-5, 5) + 6
        return self.rng.randint(1, scale * TOKEN)

    def _short(self, address: str) -> str:
        return address[:8] + ".."

    # --------------------------------------------------------------- actions

    def _do_create(self) -> tuple[str, str]:
        owner, deposit, budget, stop, take, fee_bps = self._creation_amounts()
        token, factory = self.stack.token, self.stack.factory
        params: dict[str, Any] = {
            "operator": self.roles.operator,
            "token": token.address,
            "deposit": deposit,
            "expiry": self.clock
            + self.rng.choice((5 * 60, 3_600, 86_400, 7 * 86_400))
            + self.rng.randint(60, 3_600),
            "budget": budget,
            "stopLoss": stop,
            "takeProfit": take,
            "policy": self.rng.choice(POLICIES),
            "targets": self.stack.targets if self.rng.random() < 0.7 else [self.stack.game.address],
            "maxFeeBps": fee_bps,
        }
        salt = self._next_salt(owner)
        previous_fee = int(factory.functions.feeBps().call())
        if fee_bps != previous_fee:  # deposit * fee would overflow uint256
            self._tx(factory.functions.setFee(fee_bps), self.roles.deployer)
        fee = int(factory.functions.feeFor(deposit).call())
        self._tx(token.functions.approve(factory.address, deposit + fee), owner)
        receipt = self._tx(factory.functions.createSession(as_tuple(params), salt), owner)
        if fee_bps != previous_fee:
            self._tx(factory.functions.setFee(previous_fee), self.roles.deployer)
        (created,) = self.chain.events(receipt, factory)
        wallet = self.chain.at("SessionWallet", created["args"]["wallet"])
        m = SessionModel(wallet, owner, params["expiry"], budget, huge=deposit >= 2**128)
        self.models[wallet.address] = m
        self._refresh(m)
        return (
            f"{self._short(wallet.address)} by {self.names[owner]} deposit={deposit} "
            f"budget={budget} stopLoss={stop} takeProfit={take} policy={params['policy']!r} "
            f"expires in {params['expiry'] - self.clock} s",
            wallet.address,
        )

    def _creation_amounts(self) -> tuple[str, int, int, int, int, int]:
        """(owner, deposit, budget, stopLoss, takeProfit, fee bps) for a new session."""
        fee_bps = int(self.stack.factory.functions.feeBps().call())
        if self.big_amounts and self.rng.random() < 0.3:
            self._fund_whale()
            if not self._huge_created:
                self._huge_created = True
                # deposit * feeBps must not overflow: this one session is created fee-free
                return self.whale, HUGE_DEPOSIT, 2**255, 2**254, 2**255 + 2**70, 0
            deposit = self.rng.choice((2**63, 2**64)) + self.rng.randint(-3, 3)
            stop = self.rng.choice((0, 2**63 - 1))
            take = self.rng.choice((0, 2**64 + 1, 2**255))
            return self.whale, deposit, self.rng.choice((2**63, 2**64, 2**255)), stop, take, fee_bps
        owner = self.rng.choice((self.roles.owner, self.roles.owner2))
        deposit = self.rng.randint(1, 10_000) * TOKEN + self.rng.randint(0, TOKEN)
        budget = deposit * self.rng.choice((1, 2, 5)) // self.rng.choice((1, 2))
        stop = 0 if self.rng.random() < 0.3 else deposit // self.rng.randint(2, 5)
        take = 0 if self.rng.random() < 0.3 else deposit * self.rng.randint(2, 4)
        return owner, deposit, budget, stop, take, fee_bps

    def _fund_whale(self) -> None:
        if not self._whale_funded:
            self._whale_funded = True
            self._tx(self.stack.token.functions.mint(self.whale, WHALE_FUNDS), self.roles.deployer)

    def _next_salt(self, owner: str) -> bytes:
        # unique per owner even when a workload runs twice on one chain
        while True:
            self._salt += 1
            salt = Web3.keccak(text=f"workload-{self._salt}")
            where = self.stack.factory.functions.predictWallet(owner, salt).call()
            if not self.chain.w3.eth.get_code(where):
                return bytes(salt)

    def _do_deposit(self) -> tuple[str, str]:
        m = self._pick(self._open())
        amount = self._amount(m, 2_000)
        factory = self.stack.factory.functions
        fee, fee_bps = int(factory.feeFor(amount).call()), int(factory.feeBps().call())
        self._tx(self.stack.token.functions.approve(m.wallet.address, amount + fee), m.owner)
        self._tx(m.wallet.functions.deposit(amount, fee_bps), m.owner)
        self._refresh(m)
        return f"{self._short(m.wallet.address)} +{amount}", m.wallet.address

    def _do_execute(self) -> tuple[str, str]:
        m = self._pick(self._operable())
        game = self.stack.game
        cap = min(m.balance, m.budget - m.spent)
        wager = self.rng.randint(1, max(1, cap // self.rng.choice((1, 2, 4, 10))))
        multiplier = self.rng.choice((0, 5_000, 10_000, 15_000, 20_000, 30_000))
        pot = self.chain.balance(self.stack.token, game.address)
        win = self.rng.random() < 0.5 and wager * multiplier // BPS <= pot
        if wager * multiplier > UINT256_MAX:
            win = False  # the game would overflow computing the payout
        self._tx(game.functions.setOutcome(win, multiplier), self.roles.stranger)
        data = game.encode_abi("play", args=[wager])
        self._tx(m.wallet.functions.execute(game.address, data, wager), self.roles.operator)
        self._refresh(m)
        outcome = f"win x{multiplier / BPS:g}" if win else "loss"
        return f"{self._short(m.wallet.address)} play({wager}) {outcome}", m.wallet.address

    def _do_withdraw(self) -> tuple[str, str]:
        m = self._pick([m for m in self._open() if m.balance > 0])
        amount = m.balance if self.rng.random() < 0.1 else self.rng.randint(1, m.balance)
        self._tx(m.wallet.functions.withdraw(amount), m.owner)
        self._refresh(m)
        return f"{self._short(m.wallet.address)} -{amount}", m.wallet.address

    def _do_extend(self) -> tuple[str, str]:
        m = self._pick(self._open())
        previous = m.expiry
        new_expiry = max(m.expiry, self.clock) + self.rng.choice((600, 3_600, 86_400))
        self._tx(m.wallet.functions.extend(new_expiry), m.owner)
        self._refresh(m)
        return f"{self._short(m.wallet.address)} by {new_expiry - previous} s", m.wallet.address

    def _do_revoke(self) -> tuple[str, str]:
        m = self._pick([m for m in self._open() if not m.revoked])
        self._tx(m.wallet.functions.revoke(), m.owner)
        self._refresh(m)
        return self._short(m.wallet.address), m.wallet.address

    def _do_close_owner(self) -> tuple[str, str]:
        m = self._pick(self._open())
        refund = m.balance
        self._tx(m.wallet.functions.close(CloseReason.OWNER), m.owner)
        self._refresh(m)
        return f"{self._short(m.wallet.address)} refund={refund}", m.wallet.address

    def _do_close_operator(self) -> tuple[str, str]:
        m = self._pick([m for m in self._open() if not m.revoked])
        reason = self.rng.choice(OPERATOR_REASONS)
        self._tx(m.wallet.functions.close(reason), self.roles.operator)
        self._refresh(m)
        return f"{self._short(m.wallet.address)} {reason.name}", m.wallet.address

    def _do_sweep_expired(self) -> tuple[str, str]:
        m = self._pick(
            [m for m in self._open() if not m.revoked and m.expiry <= self.clock + SWEEP_WAIT]
        )
        jumped = max(0, m.expiry - self.clock)
        self.clock = max(self.clock, m.expiry)
        self.chain.mine(self.clock)  # an empty block at (or after) the expiry
        self._sweep(m)
        return f"{self._short(m.wallet.address)} after a {jumped} s jump", m.wallet.address

    def _do_sweep_revoked(self) -> tuple[str, str]:
        m = self._pick([m for m in self._open() if m.revoked])
        self._sweep(m)
        return self._short(m.wallet.address), m.wallet.address

    def _sweep(self, m: SessionModel) -> None:
        w = m.wallet.functions
        fn = w.sweep() if self.rng.random() < 0.5 else w.close(CloseReason.SWEPT)
        self._tx(fn, self.roles.stranger)
        self._refresh(m)

    def _donation(self, m: SessionModel) -> int:
        amount = self._amount(m, 100)
        donor = self.whale if m.owner == self.whale else self.roles.owner2
        self._tx(self.stack.token.functions.transfer(m.wallet.address, amount), donor)
        return amount

    def _do_donate(self) -> tuple[str, str]:
        m = self._pick(self._open())
        amount = self._donation(m)
        self._refresh(m)
        return f"{self._short(m.wallet.address)} +{amount} (not synced)", m.wallet.address

    def _do_donate_sync(self) -> tuple[str, str]:
        m = self._pick(self._open())
        amount = self._donation(m)
        self._tx(m.wallet.functions.sync(), self.roles.stranger)
        self._refresh(m)
        return f"{self._short(m.wallet.address)} +{amount} then sync", m.wallet.address

    def _do_recover(self) -> tuple[str, str]:
        m = self._pick([m for m in self.models.values() if m.closed])
        amount = self._donation(m)
        self._tx(m.wallet.functions.recover(self.stack.token.address), self.roles.stranger)
        self._refresh(m)
        return f"{self._short(m.wallet.address)} {amount} back to the owner", m.wallet.address

    def _do_spoof(self) -> tuple[str, None]:
        """The look-alike emits every session event signature, mimicking real wallets."""
        fake = self.stack.lookalike.functions
        target = self.rng.choice(self.sessions) if self.models else self.roles.stranger
        seq = self.rng.randint(1, 30)
        amount = self.rng.randint(1, 10**6) * TOKEN
        for fn in (
            fake.fakeSessionCreated(target, self.roles.owner, self.roles.operator,
                                    self.stack.token.address),
            fake.fakeDeposited(seq, self.roles.owner, amount, amount),
            fake.fakeExecuted(seq + 1, self.stack.game.address, amount, 0),
            fake.fakeWithdrawn(seq + 2, self.roles.owner, amount, 0),
            fake.fakeClosed(seq + 3, self.rng.randint(0, 5), amount),
        ):  # fmt: skip
            self._tx(fn, self.roles.stranger)
        return f"look-alike mimics {self._short(target)} seq {seq}..{seq + 3}", None

    def _do_mine(self) -> tuple[str, None]:
        self.clock += self.rng.randint(1, 15)
        self.chain.mine(self.clock)
        return "empty block", None

    def _do_time_jump(self) -> tuple[str, None]:
        jump = self.rng.choice((60, 600, 3_600, 6 * 3_600))
        self.clock += jump
        self.chain.mine(self.clock)
        return f"+{jump} s", None


def tx_hash(receipt: TxReceipt) -> str:
    return HexBytes(receipt["transactionHash"]).to_0x_hex()
