"""Which receipts and blocks the tracker believes: a receipt only from a block on the
node's chain now, a mined job's block still there by its hash (then its receipt is not
asked again: a block's hash commits to its receipts), and a receipt gone while its block
stands (a node that forgot, not a reorg)."""

from __future__ import annotations

from typing import Any

from chain import ChainClient
from executor.jobs import Job


def quantity(answer: Any) -> int:
    """A JSON-RPC quantity from a `batch_each` answer (its error raised)."""
    if isinstance(answer, Exception):
        raise answer
    return int(answer, 16)


def still_there(job: Job, block: Any) -> bool:
    """Whether the block the job was mined in is still on the node's chain, by its hash
    (a job recorded without one, or a block the node does not answer, is asked again)."""
    return (
        job.mined_block_hash is not None
        and isinstance(block, dict)
        and block.get("hash") == job.mined_block_hash
    )


async def canonical(
    client: ChainClient, receipts: dict[str, dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """Only receipts whose block is on the node's chain now: right after a reorg a node
    may still serve a receipt from a replaced block."""
    numbers = sorted({r["blockNumber"] for r in receipts.values()})
    if not numbers:
        return receipts
    answers = await client.batch_each([("eth_getBlockByNumber", [n, False]) for n in numbers])
    hashes = {n: a["hash"] for n, a in zip(numbers, answers, strict=True) if isinstance(a, dict)}
    return {h: r for h, r in receipts.items() if hashes.get(r["blockNumber"]) == r["blockHash"]}


async def forgotten(client: ChainClient, vanished: list[Job]) -> str | None:
    """Why the node is inconsistent, if one of these mined jobs lost its receipt while
    the block it was mined in is still on the node's chain (a reorg replaces the block:
    that is not forgetting)."""
    known = [j for j in vanished if j.mined_block is not None and j.mined_block_hash]
    if not known:
        return None
    answers = await client.batch_each(
        [("eth_getBlockByNumber", [hex(j.mined_block or 0), False]) for j in known]
    )
    for job, block in zip(known, answers, strict=True):
        if isinstance(block, dict) and block.get("hash") == job.mined_block_hash:
            return (
                f"the receipt of {job.mined_hash} (job {job.id}, nonce {job.nonce}) is "
                f"gone, but its block {job.mined_block} ({job.mined_block_hash}) is still "
                "on the node's chain"
            )
    return None
