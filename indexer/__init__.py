"""Indexer: follows the chain and rebuilds every session of the configured factory from its
logs into SQLite, reorg-safe and crash-safe. See `indexer.indexer` for the loop and
`indexer.errors` for what can go wrong."""

from indexer.abi import CLOSE_REASONS, block_of, event_specs, position
from indexer.audit import Drift, audit_balances
from indexer.errors import (
    CallReverted,
    FatalError,
    IndexerError,
    RetryableError,
    TxRejected,
    WrongChain,
)
from indexer.fetch import RangeSizing
from indexer.indexer import Change, Indexer, IndexerConfig, OnChange
from indexer.migrations import migrate, open_database
from indexer.progress import Progress
from indexer.projection import Event, Session, apply, replay
from indexer.reorg import NewBlock, Reorg
from indexer.rpc import ChainClient, RetryPolicy, RpcStats
from indexer.store import BlockRef, ClosingEvent, IndexerStore

__all__ = [
    "CLOSE_REASONS",
    "BlockRef",
    "CallReverted",
    "ChainClient",
    "Change",
    "ClosingEvent",
    "Drift",
    "Event",
    "FatalError",
    "Indexer",
    "IndexerConfig",
    "IndexerError",
    "IndexerStore",
    "NewBlock",
    "OnChange",
    "Progress",
    "RangeSizing",
    "Reorg",
    "RetryPolicy",
    "RetryableError",
    "RpcStats",
    "Session",
    "TxRejected",
    "WrongChain",
    "apply",
    "audit_balances",
    "block_of",
    "event_specs",
    "migrate",
    "open_database",
    "position",
    "replay",
]
