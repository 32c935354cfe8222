"""Reorg detection: pure decisions over block headers, one named test per case.

The indexer (`indexer.py`) fetches headers and hands them here; this module says whether
they extend what is indexed (`NewBlock`s), replace part of it (a rollback to the common
ancestor, which the indexer yields as `indexer.updates.Reorg`), or replace more than the
stored window can tell (no ancestor: the indexer then checks older blocks that hold
events). Blocks older than the reorg window are final (`finalized`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from indexer.store import BlockRef


@dataclass(frozen=True)
class NewBlock:
    block: BlockRef


def checkpoint_still_canonical(checkpoint: BlockRef, canonical: BlockRef | None) -> bool:
    """True when the chain still has our checkpoint block at its height.

    `canonical` is the node's header at the checkpoint's number, None if the chain is
    now shorter than that. A checkpoint without a hash (nothing indexed yet) always is.
    """
    if not checkpoint.hash:
        return True
    return canonical is not None and canonical.hash == checkpoint.hash


def link(checkpoint: BlockRef, headers: Sequence[BlockRef]) -> list[NewBlock] | None:
    """`headers` (consecutive, ascending) as NewBlocks if they extend the checkpoint;
    None if any parent hash breaks the chain, i.e. the chain moved under us."""
    previous = checkpoint
    out: list[NewBlock] = []
    for header in headers:
        if header.number != previous.number + 1:
            return None
        if previous.hash and header.parent_hash != previous.hash:
            return None
        out.append(NewBlock(header))
        previous = header
    return out


def common_ancestor(
    stored: Sequence[BlockRef], canonical: Mapping[int, str | None]
) -> BlockRef | None:
    """The newest stored block whose hash the canonical chain still has at its height.

    `stored` newest first; `canonical` maps heights to the node's hash (None if the
    chain is shorter). None means no stored block survived: the reorg is deeper than
    what `stored` covers.
    """
    for block in stored:
        if canonical.get(block.number) == block.hash:
            return block
    return None


def finalized(head: int, window: int) -> int:
    """Blocks at or below this number are older than the reorg window."""
    return head - window
