"""What the indexer yields after each commit: the caller decides what to do with it.

`Indexer.advance()` yields these one at a time, each after its commit is durable and
before the next commit starts, so a consumer that acts on them (the rules) always sees
the chain as stored, and a kill between a commit and its consumer loses nothing: the next
start re-evaluates from the database.
"""

from __future__ import annotations

from dataclasses import dataclass

from indexer.projection import Session
from indexer.store import BlockRef


@dataclass(frozen=True)
class Block:
    """Blocks `first`..`head.number` committed, with every session they changed."""

    first: int
    head: BlockRef  # the indexed head now: its timestamp is chain time
    sessions: tuple[Session, ...]  # states after the commit of every session that changed
    backfill: bool = False  # True while catching up from far behind the head


@dataclass(frozen=True)
class Reorg:
    """Rolled back to `ancestor`: the blocks above it were replaced on the chain."""

    ancestor: BlockRef  # the newest indexed block still on the canonical chain
    depth: int  # indexed blocks orphaned: checkpoint number - ancestor number
    orphaned_head: BlockRef  # the checkpoint that was replaced
    sessions: tuple[Session, ...] = ()  # replayed without the removed events
    removed: tuple[str, ...] = ()  # sessions whose creation was rolled back

    @property
    def head(self) -> BlockRef:
        """The indexed head after the rollback: its timestamp is chain time."""
        return self.ancestor


@dataclass(frozen=True)
class Finalized:
    """Blocks at or below `number` are older than the reorg window: no reorg we can
    resolve reaches them."""

    number: int


Update = Block | Reorg | Finalized
