"""The log check against a header's bloom (`indexer.verify`): its rules over an in-process
node (MockTransport) for answers no real node gives on demand, and a real bloom false
positive on anvil, which must not stall the indexer."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from eth_typing import HexStr
from web3 import Web3

from chain import ChainClient, MockTransport, Request, Response, RetryPolicy, RpcFault, rpc_response
from chain.abi import event_specs
from chain.bloom import bloom_mask, logs_bloom, parse_bloom
from indexer import BlockRef, Indexer
from indexer.fetch import Fetcher, header_ref
from indexer.verify import LogsContradictHeader, LogVerifier, Proof, Watched, check_block, prove
from tests._chain import Chain
from tests.conftest import Roles, Session, Stack
from tests.indexer._support import FAST_RETRY, config, index_to_head, opened, rows, settle
from tests.indexer.test_indexing import activity

FACTORY = "0x" + "fa" * 20
CREATED = next("0x" + t.hex() for t, s in event_specs().items() if s.name == "SessionCreated")
DEPOSITED = next("0x" + t.hex() for t, s in event_specs().items() if s.name == "Deposited")
WALLET = "0x" + "77" * 20
WATCHED = Watched.of(FACTORY)


def _log(
    address: str, *topics: str, index: int = 0, block: str = "0x" + "b1" * 32
) -> dict[str, Any]:
    return {
        "address": address, "topics": list(topics), "data": "0x", "blockHash": block,
        "blockNumber": "0x5", "logIndex": hex(index), "transactionHash": "0x" + "77" * 32,
        "transactionIndex": "0x0", "removed": False,
    }  # fmt: skip


def _block(*logs: dict[str, Any], extra: int = 0) -> BlockRef:
    return BlockRef(5, "0x" + "b1" * 32, "0x" + "b0" * 32, 1_000, logs_bloom(logs) | extra)


def test_an_answer_with_every_log_of_the_block_passes() -> None:
    deposit = _log(WALLET, DEPOSITED, "0x" + "00" * 31 + "01")
    assert check_block(_block(deposit), [deposit], WATCHED).ok


def test_no_logs_for_a_block_whose_bloom_holds_our_topic_fails() -> None:
    verdict = check_block(_block(_log(WALLET, DEPOSITED)), [], WATCHED)
    assert verdict.missing == ("Deposited",) and not verdict.foreign


def test_a_factory_in_the_bloom_without_a_factory_log_fails() -> None:
    block = _block(_log(FACTORY, CREATED), _log(WALLET, DEPOSITED, index=1))
    verdict = check_block(block, [_log(WALLET, DEPOSITED, index=1)], WATCHED)
    assert "SessionCreated" in verdict.missing and "the factory's address" in verdict.missing


def test_a_log_the_bloom_excludes_fails() -> None:
    fake = _log("0x" + "de" * 20, DEPOSITED)
    verdict = check_block(_block(_log(WALLET, DEPOSITED)), [_log(WALLET, DEPOSITED), fake], WATCHED)
    assert verdict.foreign and "0x" + "de" * 20 in str(verdict)


def test_a_look_alike_with_our_topic_is_expected_back() -> None:
    """The filter is by topic only: another contract's log with our topic0 comes back, and
    the bloom holding that topic is satisfied by it."""
    look = _log("0x" + "11" * 20, CREATED)
    assert check_block(_block(look), [look], WATCHED).ok
    assert check_block(_block(look), [], WATCHED).missing == ("SessionCreated",)


def test_a_header_without_a_bloom_is_a_bad_answer() -> None:
    with pytest.raises(Exception, match="no logsBloom"):
        check_block(BlockRef(5, "0xb1", "0xb0", 1), [], WATCHED)


def test_receipts_prove_or_contradict_an_answer() -> None:
    ours, other = _log(WALLET, DEPOSITED), _log("0x" + "22" * 20, "0x" + "33" * 32, index=1)
    block = _block(ours, other)
    receipts = [{"blockHash": block.hash, "logs": [ours, other]}]
    assert prove(block, receipts, [ours], WATCHED) is Proof.COMPLETE
    assert prove(block, receipts, [], WATCHED) is Proof.CONTRADICTED
    assert prove(block, [{"blockHash": block.hash, "logs": [ours]}], [], WATCHED) is Proof.UNKNOWN
    assert prove(block, [{"blockHash": "0x00", "logs": [ours, other]}], [ours], WATCHED) is (
        Proof.UNKNOWN
    )
    assert prove(block, [{"nonsense": 1}], [ours], WATCHED) is Proof.UNKNOWN


# -- the verifier over in-process nodes ---------------------------------------------------
Node = dict[str, Callable[[list[Any]], Any]]


def _client(*nodes: Node) -> ChainClient:
    urls = [f"mock://node{i}" for i in range(len(nodes))]

    def handler(request: Request) -> Response:
        methods = {"eth_chainId": lambda _: "0x1", **nodes[urls.index(request.url)]}
        return rpc_response(request, methods)

    retry = RetryPolicy(initial=0.001, max_delay=0.001, attempts=3)
    return ChainClient(urls, retry=retry, transport=MockTransport(handler))


def _verifier(client: ChainClient, retries: int = 2) -> LogVerifier:
    fetcher = Fetcher(client, list(WATCHED.topics))
    return LogVerifier(client, WATCHED, fetcher.logs_at, retries=retries, backoff=0.0)


def _unsupported(_: list[Any]) -> Any:
    raise RpcFault(-32601, "the method eth_getBlockReceipts does not exist")


async def test_the_other_endpoint_is_asked_and_its_consistent_answer_taken() -> None:
    deposit = _log(WALLET, DEPOSITED)
    block = _block(deposit)
    client = _client({"eth_getLogs": lambda _: []}, {"eth_getLogs": lambda _: [deposit]})
    verifier = _verifier(client)
    assert await verifier.verified(block, [], endpoint=0) == [deposit]
    assert verifier.reasks == 1 and verifier.mismatches == 0


async def test_a_node_that_keeps_leaving_logs_out_is_never_believed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    block = _block(_log(WALLET, DEPOSITED))
    receipts = [{"blockHash": block.hash, "logs": [_log(WALLET, DEPOSITED)]}]
    node: Node = {"eth_getLogs": lambda _: [], "eth_getBlockReceipts": lambda _: receipts}
    verifier = _verifier(_client(node), retries=3)
    with caplog.at_level(logging.ERROR), pytest.raises(LogsContradictHeader) as caught:
        await verifier.verified(block, [], endpoint=0)
    assert caught.value.block == 5 and caught.value.endpoint == "#0 mock://node0"
    assert verifier.mismatches == 1 and verifier.reasks == 3
    assert any("block 5 " in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


async def test_a_log_outside_the_bloom_is_never_believed_even_without_receipts() -> None:
    fake = _log("0x" + "de" * 20, DEPOSITED)
    node: Node = {"eth_getLogs": lambda _: [fake], "eth_getBlockReceipts": _unsupported}
    verifier = _verifier(_client(node))
    with pytest.raises(LogsContradictHeader):
        await verifier.verified(_block(), [fake], endpoint=0)


async def test_without_receipts_a_consistent_empty_answer_is_believed_after_k_asks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The bounded rule: no endpoint can prove a false positive, so retries + 1 answers
    that agree are believed, at WARNING."""
    block = _block(extra=bloom_mask(bytes.fromhex(CREATED[2:])))
    node: Node = {"eth_getLogs": lambda _: [], "eth_getBlockReceipts": _unsupported}
    verifier = _verifier(_client(node, node), retries=2)
    with caplog.at_level(logging.WARNING):
        assert await verifier.verified(block, [], endpoint=0) == []
    assert verifier.false_positives == 1 and verifier.mismatches == 0 and verifier.reasks == 2
    assert any("false positive" in r.getMessage() for r in caplog.records)


async def test_receipts_that_do_not_make_the_bloom_prove_nothing() -> None:
    block = _block(extra=bloom_mask(bytes.fromhex(CREATED[2:])))
    node: Node = {"eth_getLogs": lambda _: [], "eth_getBlockReceipts": lambda _: []}
    verifier = _verifier(_client(node))
    with pytest.raises(LogsContradictHeader):
        await verifier.verified(block, [], endpoint=0)


def test_header_ref_keeps_the_bloom_and_refuses_a_malformed_one() -> None:
    raw = {"number": "0x5", "hash": "0xb1", "parentHash": "0xb0", "timestamp": "0x1"}
    assert header_ref(raw).logs_bloom is None
    assert header_ref({**raw, "logsBloom": "0x" + "00" * 255 + "01"}).logs_bloom == 1
    with pytest.raises(Exception, match="malformed block header"):
        header_ref({**raw, "logsBloom": "0x12"})


# -- a real false positive on anvil -------------------------------------------------------
# runtime code that emits LOG1(topic) for each of the three 32-byte words of its calldata
EMITTER_CODE = "0x" + "".join(f"60{off:02x}3560006000a1" for off in (0, 0x20, 0x40)) + "00"
EMITTER = "0x" + "e1" * 20


def _covering(target: bytes, rng: random.Random) -> list[bytes]:
    """Topics that are not `target` but together set every bit `target` sets."""
    mask, out = bloom_mask(target), []
    for bit in range(mask.bit_length()):
        if mask >> bit & 1:
            while not bloom_mask(candidate := rng.randbytes(32)) >> bit & 1:
                pass
            out.append(candidate)
    return out


async def test_a_real_bloom_false_positive_is_proven_by_receipts_and_passed(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
    caplog: pytest.LogCaptureFixture,
) -> None:
    activity(fresh_chain, stack, roles, make_session)
    fresh_chain.anvil.rpc("anvil_setCode", EMITTER, EMITTER_CODE)
    topics = _covering(bytes.fromhex(CREATED[2:]), random.Random(3))
    words = b"".join(topics) + bytes(32 * (3 - len(topics)))
    fresh_chain.w3.eth.send_transaction(
        {
            "from": roles.stranger,
            "to": Web3.to_checksum_address(EMITTER),
            "data": HexStr("0x" + words.hex()),
            "gas": 100_000,
        }
    )
    fresh_chain.mine()
    header = fresh_chain.anvil.rpc("eth_getBlockByNumber", "latest", False)
    n = int(header["number"], 16) - 1
    header = fresh_chain.anvil.rpc("eth_getBlockByNumber", hex(n), False)
    # the scenario is real: the bloom says "maybe SessionCreated", there is none
    assert check_block(header_ref(header), [], Watched.of(stack.factory.address)).missing == (
        "SessionCreated",
    )
    assert parse_bloom(header["logsBloom"]) != 0

    followed = tmp_path / "followed.sqlite"
    async with (
        opened(followed) as store,
        ChainClient([fresh_chain.anvil.url], retry=FAST_RETRY) as client,
    ):
        cfg = config(stack.factory.address, reorg_window=10_000)
        follower = Indexer(client, store, cfg, factory=stack.factory.address)
        with caplog.at_level(logging.DEBUG, logger="warden.indexer"):  # routine: DEBUG
            await settle(follower)  # no round fails
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
        assert follower.verifier.false_positives == 1
        assert follower.bloom_mismatches == 0
    assert any(f"block {n}: bloom false positive" in r.getMessage() for r in caplog.records)
    backfilled = tmp_path / "backfilled.sqlite"
    await index_to_head(
        fresh_chain.anvil.url, backfilled, config(stack.factory.address, reorg_window=2)
    )
    assert rows(followed) == rows(backfilled)
