"""What the API should answer, computed from the indexer's and executor's own read
layers (IndexerStore, Outbox) rather than from the API's SQL."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from executor.outbox import Outbox
from indexer import Event, Session
from tests.indexer._support import opened

AMOUNTS = frozenset({
    "fee", "initial_deposit", "deposit", "withdrawn", "balance", "spent", "budget",
    "stop_loss", "take_profit", "expiry", "refund",
})  # fmt: skip


def session_json(s: Session) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in dataclasses.fields(s):
        value = getattr(s, f.name)
        out[f.name] = str(value) if f.name in AMOUNTS else value
    out["targets"] = list(s.targets)
    out["remaining_budget"] = str(s.remaining_budget)
    return out


def event_json(e: Event) -> dict[str, Any]:
    # compare=False fields are the decoder's own (args_json: the stored text, kept so the
    # store need not encode it again), not part of an event
    out = {f.name: getattr(e, f.name) for f in dataclasses.fields(e) if f.compare}
    out["args"] = {
        k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v
        for k, v in e.args.items()
    }
    return out


async def sessions(path: Path) -> list[Session]:
    async with opened(path) as store:
        return await store.all_sessions()


async def events(path: Path, wallet: str) -> list[Event]:
    async with opened(path) as store:
        return await store.events(wallet)


async def intent_counts(path: Path) -> dict[str, int]:
    async with opened(path) as store:
        return await Outbox(store.db).counts()


async def intents(path: Path) -> list[Any]:
    async with opened(path) as store:
        return await Outbox(store.db).intents(limit=10_000)
