"""Test-side driver for contracts on anvil: transactions, reverts decoded by error name
(the executor's own decoder, `executor.reverts`), events decoded from receipts, chain time
and snapshots."""

from __future__ import annotations

import enum
import json
import time
import urllib.request
from collections.abc import Mapping
from typing import Any

from eth_typing import ChecksumAddress
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractCustomError, ContractLogicError
from web3.types import BlockIdentifier, TxReceipt

from chain.reverts import Revert, decode_revert
from contracts import load_artifact
from warden.devnet import Anvil, deploy_contract

DEFAULT_GAS = 3_000_000


class CloseReason(enum.IntEnum):
    OWNER = 0
    STOP_LOSS = 1
    TAKE_PROFIT = 2
    EXPIRED = 3
    IDLE = 4
    SWEPT = 5


def _canonical_type(item: dict[str, Any]) -> str:
    t: str = item["type"]
    if t.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in item["components"])
        return f"({inner}){t[5:]}"
    return t


def selector(signature: str) -> bytes:
    """The 4-byte function selector of e.g. "play(uint256)"."""
    return bytes(Web3.keccak(text=signature)[:4])


def abi_signature(item: Mapping[str, Any]) -> str:
    return f"{item['name']}({','.join(_canonical_type(i) for i in item['inputs'])})"


class Chain:
    """Drives one anvil: unlocked accounts send real transactions."""

    def __init__(self, anvil: Anvil) -> None:
        self.anvil = anvil
        self.w3 = Web3(Web3.HTTPProvider(anvil.url, request_kwargs={"timeout": 30}))
        self.accounts: list[ChecksumAddress] = list(self.w3.eth.accounts)

    # -- contracts -----------------------------------------------------------
    def at(self, name: str, address: str) -> Contract:
        return self.w3.eth.contract(
            address=Web3.to_checksum_address(address), abi=load_artifact(name).abi
        )

    def deploy(self, name: str, *args: Any, sender: str | None = None) -> Contract:
        return self.at(name, deploy_contract(self.w3, name, sender or self.accounts[0], *args))

    # -- transactions --------------------------------------------------------
    def try_send(
        self, fn: ContractFunction, sender: str, gas: int = DEFAULT_GAS
    ) -> tuple[TxReceipt, Revert | None]:
        """Send a real transaction (no gas estimate, so reverts are mined too)."""
        tx = fn.transact({"from": sender, "gas": gas})
        receipt = self.w3.eth.wait_for_transaction_receipt(tx)
        if receipt["status"] == 1:
            return receipt, None
        trace = self.anvil.rpc(
            "debug_traceTransaction", HexBytes(tx).to_0x_hex(), {"tracer": "callTracer"}
        )
        return receipt, decode_revert(trace.get("output"))

    def try_send_raw(
        self, fn: ContractFunction, sender: str, gas: int = DEFAULT_GAS
    ) -> tuple[TxReceipt, Revert | None]:
        """`try_send` straight through anvil's eth_sendTransaction: web3's `transact` asks
        the node for fees, the chain id and the nonce first (four more calls), which a test
        sending thousands of transactions cannot afford. Anvil fills them in."""
        data = fn._encode_transaction_data()
        tx = {"from": sender, "to": fn.address, "data": data, "gas": hex(gas)}
        tx_hash = self.anvil.rpc("eth_sendTransaction", tx)
        while not self.anvil.rpc("eth_getTransactionReceipt", tx_hash):  # mined in a moment
            time.sleep(0.001)
        receipt = self.w3.eth.get_transaction_receipt(tx_hash)
        if receipt["status"] == 1:
            return receipt, None
        trace = self.anvil.rpc("debug_traceTransaction", tx_hash, {"tracer": "callTracer"})
        return receipt, decode_revert(trace.get("output"))

    def call_raw(
        self, to: str, data: str, sender: str | None = None, block: BlockIdentifier = "latest"
    ) -> tuple[str | None, Revert | None]:
        """A raw eth_call: (the 0x result, None), or (None, the revert). Over ten times
        faster than web3's contract call, for tests that make thousands."""
        call = {"to": to, "data": data, **({"from": sender} if sender else {})}
        at = hex(block) if isinstance(block, int) else block
        body = {"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": [call, at]}
        request = urllib.request.Request(
            self.anvil.url, data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=10) as resp:
            answer = json.loads(resp.read())
        if "error" in answer:
            error = answer["error"]
            if "data" not in error and "revert" not in str(error.get("message")):
                raise AssertionError(f"eth_call failed, not a revert: {error}")
            return None, decode_revert(error.get("data") or "0x")
        return answer["result"], None

    def send(self, fn: ContractFunction, sender: str, gas: int = DEFAULT_GAS) -> TxReceipt:
        receipt, revert = self.try_send(fn, sender, gas)
        assert revert is None, f"{fn.fn_name} from {sender} reverted: {revert}"
        return receipt

    def expect_revert(
        self, fn: ContractFunction, sender: str, name: str, gas: int = DEFAULT_GAS
    ) -> Revert:
        _, revert = self.try_send(fn, sender, gas)
        assert revert is not None, f"{fn.fn_name} from {sender} succeeded, expected {name}"
        assert revert.name == name, f"{fn.fn_name} from {sender}: got {revert}, expected {name}"
        return revert

    def call_revert(self, fn: ContractFunction, sender: str) -> Revert | None:
        """eth_call: the revert the call would raise now, or None if it would succeed."""
        try:
            fn.call({"from": sender})
        except (ContractCustomError, ContractLogicError) as exc:
            data = exc.data if isinstance(exc.data, str) else None
            return decode_revert(data)
        return None

    def events(self, receipt: TxReceipt, contract: Contract) -> list[Any]:
        """Decoded logs emitted by `contract` in this receipt, in log order."""
        by_topic = {
            bytes(Web3.keccak(text=abi_signature(item))): item["name"]
            for item in contract.abi
            if item["type"] == "event"
        }
        out = []
        for log in receipt["logs"]:
            if log["address"] != contract.address or not log["topics"]:
                continue
            name = by_topic.get(bytes(log["topics"][0]))
            if name is not None:
                out.append(contract.events[name]().process_log(log))
        return out

    # -- time and state --------------------------------------------------------
    def now(self) -> int:
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def set_next_timestamp(self, ts: int) -> None:
        self.anvil.rpc("evm_setNextBlockTimestamp", ts)

    def mine(self, timestamp: int | None = None) -> None:
        if timestamp is not None:
            self.set_next_timestamp(timestamp)
        self.anvil.rpc("evm_mine")

    def snapshot(self) -> str:
        snap: str = self.anvil.rpc("evm_snapshot")
        return snap

    def revert_to(self, snap: str) -> None:
        assert self.anvil.rpc("evm_revert", snap) is True, f"evm_revert({snap}) failed"

    def balance(self, token: Contract, who: str, block: BlockIdentifier = "latest") -> int:
        value: int = token.functions.balanceOf(who).call(block_identifier=block)
        return value
