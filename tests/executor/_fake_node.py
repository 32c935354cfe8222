"""An in-process node for the executor's unit tests, behind `chain.transport.MockTransport`.

A small state machine: a canonical chain of blocks, a pool keyed by (sender, nonce), and
one account balance per sender. It decodes every raw transaction it is sent (sender,
nonce, fees, hash) and refuses what geth would (nonce too low, already known, a
replacement raising the fees by less than 10%, no funds for gas). Nothing happens on its
own: `mine()` makes a block of what the pool offers at the current base fee, `reorg()`
takes blocks away, and the test says when the indexer catches up (`FakeStore.sync`).
A node that forgets: `forgotten` receipts are not served though their block stays, and
`nonce_lag` lowers the mined count it answers.

Each block holds what fits its `gas_limit` as anvil fills one (what the block used so
far plus the next transaction's gas limit), a transaction asking more than a block is
refused, and `requests` records every call (`asked` counts them).

What it does not model: execution (a call to an address in `reverts` reverts with that
data; every other mined transaction succeeds, unless its target is `failing`, and one
with calldata emits `Closed` from its target, as a single close does, unless the target
is `inert`), gas (estimates are `gas_estimate`, or `estimates` per target), and base-fee
movement (each block has the `base_fee` the test set).

`closeBatch` is run member by member as the factory does: a member in `hostile` fails
with its revert data (`BatchCloseFailed`; "0x": out of its stipend), one past
`batch_reach` is not tried (`BatchIncomplete`), every other closes. The factory's
registry answers `isTrustedToken` from `listed` (None: every token), and with `simulates`
the node answers `eth_simulateV1` of a batch with the same logs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from eth_utils.crypto import keccak
from hexbytes import HexBytes

from chain import ChainClient
from chain.abi import event_specs
from chain.calls import CLOSE_BATCH
from chain.client import RetryPolicy
from chain.transport import MockTransport, Request, Response, RpcFault, rpc_response
from executor.batching import IS_TRUSTED_TOKEN
from indexer import Session
from indexer.store import ClosingEvent

GWEI = 10**9
CHAIN_ID = 31337
TOKEN = "0x" + "70" * 20


def _topic(name: str) -> str:
    return "0x" + next(s for s in event_specs().values() if s.name == name).topic.hex()


CLOSED_TOPIC = _topic("Closed")
FAILED_TOPIC = _topic("BatchCloseFailed")
INCOMPLETE_TOPIC = _topic("BatchIncomplete")
CLOSE_BATCH_HEX = "0x" + CLOSE_BATCH.hex()
GAS_LIMIT = 30_000_000
NO_WAIT = RetryPolicy(initial=0.0, attempts=2)


@dataclass(frozen=True)
class Tx:
    hash: str
    sender: str
    nonce: int
    to: str  # lowercase
    data: str
    gas: int
    max_fee: int
    tip: int


@dataclass(frozen=True)
class Block:
    number: int
    hash: str
    parent: str
    timestamp: int
    base_fee: int
    txs: tuple[Tx, ...]


def _block_hash(number: int, parent: str, salt: int) -> str:
    return "0x" + keccak(f"{number}:{parent}:{salt}".encode()).hex()


def decode(raw: str) -> Tx:
    """A signed EIP-1559 transaction as the node sees it."""
    data = HexBytes(raw)
    fields = TypedTransaction.from_bytes(data).as_dict()
    return Tx(
        hash="0x" + keccak(data).hex(),
        sender=Account.recover_transaction(data),
        nonce=int(fields["nonce"]),
        to="0x" + bytes(fields["to"]).hex(),
        data="0x" + bytes(fields["data"]).hex(),
        gas=int(fields["gas"]),
        max_fee=int(fields["maxFeePerGas"]),
        tip=int(fields["maxPriorityFeePerGas"]),
    )


@dataclass
class FakeNode:
    base_fee: int = GWEI  # of the next block mined
    tip: int = GWEI  # the reward eth_feeHistory reports for every block
    balance: int = 10**21  # of every sender not in `balances`
    start_time: int = 1_700_000_000
    block_time: int = 12
    gas_estimate: int = 80_000
    blocks: list[Block] = field(default_factory=list)
    pool: dict[tuple[str, int], Tx] = field(default_factory=dict)
    balances: dict[str, int] = field(default_factory=dict)
    reverts: dict[str, str] = field(default_factory=dict)  # lowercase address -> revert data
    refusals: list[str] = field(default_factory=list)  # the next sends are refused with these
    stale: dict[str, dict[str, Any]] = field(default_factory=dict)  # receipts still served
    accepted: list[Tx] = field(default_factory=list)  # every transaction taken, in order
    # Faults a real node shows rarely and never on demand:
    inert: set[str] = field(default_factory=set)  # lowercase: calls run and emit nothing
    forgotten: set[str] = field(default_factory=set)  # mined, but their receipts not served
    nonce_lag: int = 0  # the mined count ("latest") this much below the truth
    # What a hostile token does to a close, and the factory's registry:
    failing: set[str] = field(default_factory=set)  # lowercase: mined transactions revert
    hostile: dict[str, str] = field(default_factory=dict)  # wallet -> its revert in a batch
    batch_reach: int | None = None  # members a closeBatch tries before it stops
    listed: set[str] | None = None  # tokens isTrustedToken lists (None: all)
    estimates: dict[str, int] = field(default_factory=dict)  # lowercase target -> gas
    simulates: bool = False  # answers eth_simulateV1
    registry_asked: int = 0  # isTrustedToken questions answered
    requests: list[tuple[str, tuple[Any, ...]]] = field(default_factory=list)  # every call
    trips: list[list[str]] = field(default_factory=list)  # the methods of each HTTP request
    unanswered_blocks: int = 0  # the next this many questions for a past block get null
    gas_limit: int = GAS_LIMIT  # of every block: what a block holds, what a tx may ask
    _forks: int = 0

    def __post_init__(self) -> None:
        if not self.blocks:
            genesis = Block(0, _block_hash(0, "0x", 0), "0x" + "00" * 32, self.start_time,
                            self.base_fee, ())  # fmt: skip
            self.blocks.append(genesis)
        self.transport = MockTransport(self.handle)

    # -- what a test does ----------------------------------------------------------------
    def client(self) -> ChainClient:
        return ChainClient(
            ["mock://node"], chain_id=CHAIN_ID, transport=self.transport, retry=NO_WAIT
        )

    @property
    def head(self) -> Block:
        return self.blocks[-1]

    def mine(self, count: int = 1) -> Block:
        """Mine `count` blocks, each with what the pool offers at `base_fee`: per sender,
        the transactions from its next nonce on, in order, until one pays too little."""
        for _ in range(count):
            parent = self.head
            included: list[Tx] = []
            used = 0  # a transaction fits while what the block used plus its limit does
            for sender in dict.fromkeys(s for s, _ in self.pool):
                nonce = self.mined_count(sender)
                while (
                    (tx := self.pool.get((sender, nonce)))
                    and tx.max_fee >= self.base_fee
                    and used + tx.gas <= self.gas_limit
                ):
                    included.append(self.pool.pop((sender, nonce)))
                    used += min(tx.gas, self.gas_estimate)
                    nonce += 1
            number = parent.number + 1
            self.blocks.append(
                Block(number, _block_hash(number, parent.hash, self._forks), parent.hash,
                      parent.timestamp + self.block_time, self.base_fee, tuple(included))
            )  # fmt: skip
        return self.head

    def reorg(self, depth: int, *, stale_receipts: bool = False) -> None:
        """Take the last `depth` blocks away; their transactions are forgotten (as anvil
        forgets them). With `stale_receipts`, their receipts are still served, as a
        lagging backend of a provider does right after a reorg."""
        removed, self.blocks = self.blocks[-depth:], self.blocks[:-depth]
        if stale_receipts:
            for block in removed:
                for i, tx in enumerate(block.txs):
                    self.stale[tx.hash] = self._receipt(block, i, tx)
        self._forks += 1

    def send_from(self, key: str, nonce: int, *, to: str | None = None) -> Tx:
        """Another user of `key` sends a self-transfer (or one to `to`) at `nonce`."""
        account = Account.from_key(key)
        signed = account.sign_transaction(
            {"type": 2, "chainId": CHAIN_ID, "nonce": nonce, "to": to or account.address,
             "value": 1, "data": "0x", "gas": 21_000, "maxFeePerGas": 2 * self.base_fee + GWEI,
             "maxPriorityFeePerGas": GWEI}
        )  # fmt: skip
        return self.accept(signed.raw_transaction.to_0x_hex())

    def mined(self, sender: str | None = None) -> list[Tx]:
        """Transactions on the canonical chain (of `sender`), oldest first."""
        txs = [tx for block in self.blocks for tx in block.txs]
        return txs if sender is None else [tx for tx in txs if tx.sender == sender]

    def mined_count(self, sender: str) -> int:
        return len(self.mined(sender))

    def pending_count(self, sender: str) -> int:
        nonce = self.mined_count(sender)
        while (sender, nonce) in self.pool:
            nonce += 1
        return nonce

    # -- JSON-RPC ------------------------------------------------------------------------
    def asked(self, method: str, *params: Any) -> int:
        """How many times `method` was called (with parameters starting with `params`)."""
        return sum(m == method and p[: len(params)] == params for m, p in self.requests)

    def handle(self, request: Request) -> Response:
        body = orjson.loads(request.body)
        items = body if isinstance(body, list) else [body]
        self.trips.append([item["method"] for item in items])
        for item in items:
            self.requests.append((item["method"], tuple(item.get("params") or ())))
        methods: dict[str, Callable[[list[Any]], Any]] = {
            "eth_chainId": lambda _: hex(CHAIN_ID),
            "eth_blockNumber": lambda _: hex(self.head.number),
            "eth_getBlockByNumber": self._get_block,
            "eth_feeHistory": self._fee_history,
            "eth_getTransactionCount": self._transaction_count,
            "eth_getBalance": lambda p: hex(self.balances.get(p[0], self.balance)),
            "eth_estimateGas": lambda p: self._call(p[0], hex(self._estimate(p[0]))),
            "eth_call": lambda p: self._call(p[0], self._answer(p[0])),
            "eth_sendRawTransaction": self._send_raw,
            "eth_getTransactionReceipt": self._get_receipt,
        }
        if self.simulates:
            methods["eth_simulateV1"] = self._simulate
        return rpc_response(request, methods)

    def _estimate(self, tx: dict[str, Any]) -> int:
        return self.estimates.get(str(tx.get("to", "")).lower(), self.gas_estimate)

    def _answer(self, tx: dict[str, Any]) -> str:
        data = str(tx.get("data", "0x"))
        if data.startswith(IS_TRUSTED_TOKEN):
            self.registry_asked += 1
            token = "0x" + data[-40:]
            listed = self.listed is None or token in {t.lower() for t in self.listed}
            return "0x" + f"{int(listed):064x}"
        return "0x"

    def _simulate(self, params: list[Any]) -> list[dict[str, Any]]:
        tx = params[0]["blockStateCalls"][0]["calls"][0]
        status, logs = self.effects(str(tx["to"]).lower(), str(tx["data"]))
        closed = sum(log["topics"][0] == CLOSED_TOPIC for log in logs)
        result = {"status": hex(status), "returnData": "0x" + f"{closed:064x}",
                  "gasUsed": hex(self.gas_estimate), "logs": logs}  # fmt: skip
        return [{"calls": [result]}]

    def effects(self, to: str, data: str) -> tuple[int, list[dict[str, Any]]]:
        """(status, logs) of a transaction to `to` with calldata `data`, mined now."""
        if data.startswith(CLOSE_BATCH_HEX):
            wallets, _, _ = abi_decode(
                ["address[]", "uint8[]", "uint256"], bytes.fromhex(data[10:])
            )
            logs: list[dict[str, Any]] = []
            for i, wallet in enumerate(w.lower() for w in wallets):
                if self.batch_reach is not None and i >= self.batch_reach:
                    rest = abi_encode(["uint256", "address[]"], [i, list(wallets[i:])])
                    logs.append({"address": to, "topics": [INCOMPLETE_TOPIC],
                                 "data": "0x" + rest.hex()})  # fmt: skip
                    break
                if wallet in self.hostile:
                    reason = bytes.fromhex(self.hostile[wallet].removeprefix("0x"))
                    topic = "0x" + wallet[2:].rjust(64, "0")
                    data = "0x" + abi_encode(["bytes"], [reason]).hex()
                    logs.append({"address": to, "topics": [FAILED_TOPIC, topic], "data": data})
                elif wallet not in self.inert:
                    logs.append({"address": wallet, "topics": [CLOSED_TOPIC], "data": "0x"})
            return 1, logs
        if to in self.failing:
            return 0, []
        closes = data != "0x" and to not in self.inert
        return 1, [{"address": to, "topics": [CLOSED_TOPIC], "data": "0x"}] if closes else []

    def _get_block(self, params: list[Any]) -> dict[str, Any] | None:
        tag = params[0]
        number = self.head.number if tag == "latest" else int(tag, 16)
        if number > self.head.number:
            return None
        if tag != "latest" and self.unanswered_blocks > 0:
            self.unanswered_blocks -= 1
            return None
        block = self.blocks[number]
        return {
            "number": hex(block.number),
            "hash": block.hash,
            "parentHash": block.parent,
            "timestamp": hex(block.timestamp),
            "baseFeePerGas": hex(block.base_fee),
            "gasUsed": hex(sum(min(tx.gas, self.gas_estimate) for tx in block.txs)),
            "gasLimit": hex(self.gas_limit),
            "transactions": [tx.hash for tx in block.txs],
        }

    def _fee_history(self, params: list[Any]) -> dict[str, Any]:
        blocks = self.blocks[-int(params[0], 16) :]
        return {
            "oldestBlock": hex(blocks[0].number),
            "baseFeePerGas": [hex(b.base_fee) for b in blocks] + [hex(self.base_fee)],
            "gasUsedRatio": [0.5] * len(blocks),
            "reward": [[hex(self.tip)] for _ in blocks],
        }

    def _transaction_count(self, params: list[Any]) -> str:
        sender, tag = params
        if tag == "pending":
            return hex(self.pending_count(sender))
        return hex(max(0, self.mined_count(sender) - self.nonce_lag))

    def _call(self, tx: dict[str, Any], answer: str) -> str:
        """`answer`, unless the test made calls to `tx`'s target revert."""
        data = self.reverts.get(str(tx.get("to", "")).lower())
        if data is not None:
            raise RpcFault(3, "execution reverted", data)
        return answer

    def _send_raw(self, params: list[Any]) -> str:
        return self.accept(params[0]).hash

    def accept(self, raw: str) -> Tx:
        """Take a raw transaction into the pool, or refuse it as geth would."""
        tx = decode(raw)
        if self.refusals:
            raise RpcFault(-32000, self.refusals.pop(0))
        known = {t.hash for t in self.pool.values()} | {t.hash for t in self.mined()}
        if tx.hash in known:
            raise RpcFault(-32000, "already known")
        if tx.nonce < self.mined_count(tx.sender):
            raise RpcFault(-32000, "nonce too low")
        pooled = self.pool.get((tx.sender, tx.nonce))
        if pooled is not None and (
            tx.max_fee < pooled.max_fee * 110 // 100 or tx.tip < pooled.tip * 110 // 100
        ):
            raise RpcFault(-32000, "replacement transaction underpriced")
        if tx.gas > self.gas_limit:
            raise RpcFault(-32000, "exceeds block gas limit")
        if tx.gas * tx.max_fee > self.balances.get(tx.sender, self.balance):
            raise RpcFault(-32000, "insufficient funds for gas * price + value")
        self.pool[(tx.sender, tx.nonce)] = tx
        self.accepted.append(tx)
        return tx

    def _get_receipt(self, params: list[Any]) -> dict[str, Any] | None:
        if params[0] in self.forgotten:
            return None
        for block in self.blocks:
            for i, tx in enumerate(block.txs):
                if tx.hash == params[0]:
                    return self._receipt(block, i, tx)
        return self.stale.get(params[0])

    def _receipt(self, block: Block, index: int, tx: Tx) -> dict[str, Any]:
        paid = block.base_fee + min(tx.tip, tx.max_fee - block.base_fee)
        status, logs = self.effects(tx.to, tx.data)
        return {
            "transactionHash": tx.hash,
            "transactionIndex": hex(index),
            "blockHash": block.hash,
            "blockNumber": hex(block.number),
            "from": tx.sender,
            "to": tx.to,
            "status": hex(status),
            "gasUsed": hex(min(tx.gas, self.gas_estimate)),
            "effectiveGasPrice": hex(paid),
            "logs": logs,
        }


@dataclass
class FakeStore:
    """What the executor reads of the indexer: sessions, and the `Closed` events of the
    node's chain as of the last `sync` (the indexer catching up)."""

    node: FakeNode
    sessions_by_wallet: dict[str, Session] = field(default_factory=dict)
    closing: dict[str, ClosingEvent] = field(default_factory=dict)

    def add_session(self, wallet: str, *, operator: str) -> Session:
        session = replace(_TEMPLATE, wallet=wallet, operator=operator)
        self.sessions_by_wallet[wallet] = session
        return session

    def sync(self) -> None:
        wallets = {w.lower(): w for w in self.sessions_by_wallet}
        self.closing = {}
        for block in self.node.blocks:
            for i, tx in enumerate(block.txs):
                _, logs = self.node.effects(tx.to, tx.data)
                for log in logs:
                    wallet = wallets.get(log["address"])
                    if wallet is not None and log["topics"][0] == CLOSED_TOPIC:
                        self.closing[wallet] = ClosingEvent(
                            wallet, block.number * 1000 + i, tx.hash, tx.sender
                        )

    async def sessions(self, wallets: Iterable[str]) -> dict[str, Session]:
        return {w: self.sessions_by_wallet[w] for w in wallets if w in self.sessions_by_wallet}

    async def closing_events(self, wallets: Iterable[str]) -> dict[str, ClosingEvent]:
        return {w: self.closing[w] for w in wallets if w in self.closing}


_TEMPLATE = Session(
    wallet="", owner="0x" + "0a" * 20, operator="", token=TOKEN, policy="0x" + "0b" * 20,
    targets=(), salt="0x" + "00" * 32, fee=0, initial_deposit=10**21, deposit=10**21,
    withdrawn=0, balance=10**21, spent=0, budget=10**21, stop_loss=0, take_profit=0,
    expiry=2**40, status="active", close_reason=None, closed_by=None, refund=0,
    execution_count=0, created_block=1, created_at=0, created_position=1000, last_seq=0,
    last_position=1000, last_activity=0, revoked_at=None, closed_at=None, seq_gaps=0,
    gap_note=None,
)  # fmt: skip
