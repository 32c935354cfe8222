"""Indexer: follows the chain and rebuilds every session of the configured factory from its
logs into SQLite, reorg-safe and crash-safe. See `indexer.indexer` for the loop and
`chain.errors` for what can go wrong talking to the node."""

from indexer.audit import Drift, audit_balances
from indexer.fetch import RangeSizing
from indexer.indexer import Change, Indexer, IndexerConfig, OnChange
from indexer.migrations import migrate, open_database
from indexer.progress import Progress
from indexer.projection import Event, Session, apply, replay
from indexer.reads import SessionReads
from indexer.reorg import NewBlock, Reorg
from indexer.settings import ChainSettings
from indexer.store import BlockRef, ClosingEvent, IndexerStore

__all__ = [
    "BlockRef",
    "ChainSettings",
    "Change",
    "ClosingEvent",
    "Drift",
    "Event",
    "Indexer",
    "IndexerConfig",
    "IndexerStore",
    "NewBlock",
    "OnChange",
    "Progress",
    "RangeSizing",
    "Reorg",
    "Session",
    "SessionReads",
    "apply",
    "audit_balances",
    "migrate",
    "open_database",
    "replay",
]
