"""Indexer: follows the chain and rebuilds every session of the configured factory from its
logs into SQLite, reorg-safe and crash-safe. See `indexer.indexer` for the loop,
`indexer.updates` for what it yields after each commit and `chain.errors` for what can go
wrong talking to the node."""

from indexer.audit import Drift, audit_balances
from indexer.decoding import DecodeWorkerFailed
from indexer.fetch import RangeSizing
from indexer.indexer import Indexer
from indexer.migrations import migrate, open_database
from indexer.progress import Progress
from indexer.projection import Event, Session, apply, replay
from indexer.reads import SessionReads
from indexer.reorg import NewBlock
from indexer.settings import ChainSettings
from indexer.store import Batch, BlockRef, ClosingEvent, IndexerStore, StoreHooks
from indexer.updates import Block, Finalized, Reorg, Update

__all__ = [
    "Batch",
    "Block",
    "BlockRef",
    "ChainSettings",
    "ClosingEvent",
    "DecodeWorkerFailed",
    "Drift",
    "Event",
    "Finalized",
    "Indexer",
    "IndexerStore",
    "NewBlock",
    "Progress",
    "RangeSizing",
    "Reorg",
    "Session",
    "SessionReads",
    "StoreHooks",
    "Update",
    "apply",
    "audit_balances",
    "migrate",
    "open_database",
    "replay",
]
