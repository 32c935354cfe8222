"""The indexer: backfill to the safe head, then follow it, surviving reorgs and crashes.

One `step()` asks the node for its head and the header at our checkpoint's height:

- checkpoint replaced → `Reorg`: find the common ancestor, roll back to it in one
  transaction, replay the sessions that lost events, hand them to the change feed;
- far behind → backfill: adaptive `eth_getLogs` ranges, several in flight, committed
  strictly in order, each range with its events, projection and checkpoint in one
  transaction, progress reported;
- within the reorg window → follow: every header fetched and linked by parent hash,
  logs fetched by block hash, committed together.

After every commit the changed sessions go to `on_change` (the daemon wires it to the
rules). A kill at any moment loses at most the uncommitted batch, which the next start
fetches again from the checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chain.abi import checksum, topics_filter
from chain.client import ChainClient
from chain.errors import BadResponse, RetryableError, UnknownBlock
from indexer.fetch import Fetcher, RangeSizing, header_ref
from indexer.logs import classify, wallet_addresses
from indexer.progress import Progress
from indexer.projection import Event, Session, apply_all
from indexer.reorg import (
    Reorg,
    checkpoint_still_canonical,
    common_ancestor,
    finalized,
    link,
)
from indexer.store import Batch, BlockRef, IndexerStore

log = logging.getLogger("warden.indexer")


@dataclass(frozen=True)
class IndexerConfig:
    factory: str  # checksummed address of the configured SessionWalletFactory
    start_block: int = 0  # the factory's deployment block: nothing before it matters
    confirmations: int = 0  # index up to head - confirmations
    reorg_window: int = 64  # recent headers kept to find a common ancestor
    concurrency: int = 4  # backfill ranges in flight
    sizing: RangeSizing = field(default_factory=RangeSizing)
    follow_batch: int = 100  # blocks per commit while following


@dataclass(frozen=True)
class Change:
    """What one commit changed, handed to the change feed after the commit."""

    head: BlockRef  # the indexed head now: its timestamp is chain time
    sessions: tuple[Session, ...]  # states after the commit of every session that changed
    removed: tuple[str, ...] = ()  # sessions whose creation was rolled back
    reorg: Reorg | None = None
    backfill: bool = False  # True while catching up from far behind the head
    finalized: int | None = None  # blocks at or below this are older than the reorg window


OnChange = Callable[[Change], Awaitable[None]]


class Indexer:
    def __init__(
        self,
        client: ChainClient,
        store: IndexerStore,
        config: IndexerConfig,
        *,
        on_change: OnChange | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.config = config
        self.on_change = on_change
        self.progress = progress
        self.fetcher = Fetcher(client, topics_filter(), config.sizing)
        self.head: int | None = None  # the node's head at the last step
        self.reorgs = 0

    # -- driving ---------------------------------------------------------------------
    async def checkpoint(self) -> BlockRef:
        cp = await self.store.checkpoint()
        if cp is None:
            return BlockRef(self.config.start_block - 1, "", "", 0)
        return cp

    async def step(self) -> bool:
        """One round: reorg check, then backfill or follow. True if anything changed."""
        cp = await self.checkpoint()
        head, cp_header = await self._head_and(cp)
        self.head = head
        if not checkpoint_still_canonical(cp, cp_header):
            await self._reorg(cp)
            return True
        target = head - self.config.confirmations
        if target <= cp.number:
            return False
        window_floor = finalized(head, self.config.reorg_window)
        if cp.number < window_floor:
            await self._backfill(cp.number + 1, min(target, window_floor))
        else:
            await self._follow(cp, min(target, cp.number + self.config.follow_batch))
        return True

    async def sync_to_head(self) -> BlockRef:
        """Index until caught up with the safe head, then return the checkpoint."""
        while await self.advance():
            pass
        return await self.checkpoint()

    async def run(self, stop: asyncio.Event, poll_interval: float = 1.0) -> None:
        """Follow the chain until `stop` is set. Transient failures wait and retry."""
        while not stop.is_set():
            progressed = await self.advance()
            if not progressed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_interval)

    async def advance(self) -> bool:
        """`step`, where a transient failure is logged and waited out (True: call again)."""
        try:
            return await self.step()
        except UnknownBlock as exc:
            log.info("chain moved during a fetch (%s); checking for a reorg", exc)
            return True
        except RetryableError as exc:
            log.warning("indexer step failed, retrying: %s", exc)
            await asyncio.sleep(self.client.retry.initial)
            return True

    async def _head_and(self, cp: BlockRef) -> tuple[int, BlockRef | None]:
        if cp.number < 0:
            return await self.client.block_number(), None
        number, header = await self.client.batch(
            [("eth_blockNumber", []), ("eth_getBlockByNumber", [hex(cp.number), False])]
        )
        return int(number, 16), header_ref(header) if header else None

    # -- reorgs ----------------------------------------------------------------------
    async def _reorg(self, cp: BlockRef) -> None:
        stored = await self.store.blocks(cp.number - self.config.reorg_window)
        canonical = await self.fetcher.canonical_hashes([b.number for b in stored])
        ancestor = common_ancestor(stored, canonical)
        if ancestor is None:
            ancestor = await self._deep_ancestor(min((b.number for b in stored), default=cp.number))
        result = await self.store.rollback(ancestor)
        event = Reorg(ancestor, cp.number - ancestor.number, cp)
        self.reorgs += 1
        log.warning(
            "reorg: %d indexed blocks replaced; rolled back to block %d (%s), %d events "
            "removed, %d sessions replayed, %d removed",
            event.depth, ancestor.number, ancestor.hash[:10] or "start", result.events_removed,
            len(result.sessions), len(result.removed),
        )  # fmt: skip
        await self._emit(Change(ancestor, tuple(result.sessions), tuple(result.removed), event))

    async def _deep_ancestor(self, below: int) -> BlockRef:
        """The reorg went past the stored window: check older blocks holding events."""
        log.error(
            "reorg deeper than the %d-block window (no stored header below %d survived); "
            "searching older blocks with events for the common ancestor",
            self.config.reorg_window,
            below,
        )
        while True:
            older = await self.store.event_blocks_below(below, 200)
            if not older:
                start = self.config.start_block - 1
                log.error("no indexed block survived the reorg: re-indexing from %d", start + 1)
                return BlockRef(start, "", "", 0)
            canonical = await self.fetcher.canonical_hashes([b.number for b in older])
            found = common_ancestor(older, canonical)
            if found is not None:
                header = (await self.fetcher.headers([found.number]))[found.number]
                log.error("deep reorg resolved: common ancestor is block %d", found.number)
                return header
            below = older[-1].number

    # -- backfill --------------------------------------------------------------------
    async def _backfill(self, lo: int, hi: int) -> None:
        if self.progress:
            self.progress.begin(lo, hi)
        pending: deque[asyncio.Task[tuple[list[dict[str, Any]], BlockRef]]] = deque()
        nxt = lo
        try:
            while nxt <= hi or pending:
                while nxt <= hi and len(pending) < self.config.concurrency:
                    end = min(hi, nxt + self.fetcher.size - 1)
                    pending.append(asyncio.create_task(self.fetcher.range_logs(nxt, end)))
                    nxt = end + 1
                logs, end_header = await pending.popleft()
                events = await self._commit(logs, [end_header], end_header, backfill=True)
                if self.progress:
                    self.progress.advance(end_header.number, events)
        finally:
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self.progress:
            self.progress.done()

    # -- following -------------------------------------------------------------------
    async def _follow(self, cp: BlockRef, hi: int) -> None:
        headers = await self.fetcher.headers(range(cp.number + 1, hi + 1))
        linked = link(cp, [headers[n] for n in range(cp.number + 1, hi + 1)])
        if linked is None:
            # The chain moved between our reorg check and these headers; the next step
            # sees it at the checkpoint (or the headers were mixed branches: fetch again).
            raise UnknownBlock(f"headers {cp.number + 1}-{hi} do not link to block {cp.number}")
        blocks = [nb.block for nb in linked]
        logs = await self.fetcher.block_logs(blocks)
        await self._commit(logs, blocks, blocks[-1], backfill=False)

    # -- commit ----------------------------------------------------------------------
    async def _commit(
        self,
        logs: list[dict[str, Any]],
        blocks: Sequence[BlockRef],
        checkpoint: BlockRef,
        backfill: bool,
    ) -> int:
        headers = {b.number: b for b in blocks}
        missing = sorted({int(r["blockNumber"], 16) for r in logs} - headers.keys())
        if missing:
            headers.update(await self.fetcher.headers(missing))
        for r in logs:
            if headers[int(r["blockNumber"], 16)].hash != r["blockHash"]:
                raise BadResponse(
                    f"log in block {int(r['blockNumber'], 16)} has hash {r['blockHash']}, the "
                    f"header has {headers[int(r['blockNumber'], 16)].hash}: fetched across a reorg"
                )
        candidates = [checksum(bytes.fromhex(a[2:])) for a in wallet_addresses(logs)]
        sessions = await self.store.sessions(candidates)
        known = {w.lower() for w in sessions}
        classified = classify(logs, headers, self.config.factory, known.__contains__)
        changed = self._project(sessions, classified.events)
        stored_blocks = sorted(headers.values(), key=lambda b: b.number)
        await self.store.commit(
            Batch(stored_blocks, classified.events, classified.ignored, changed, checkpoint),
            self.config.reorg_window,
        )
        if classified.ignored:
            log.info("ignored %d look-alike or malformed logs", len(classified.ignored))
        final = None if self.head is None else finalized(self.head, self.config.reorg_window)
        await self._emit(Change(checkpoint, tuple(changed), backfill=backfill, finalized=final))
        return len(classified.events)

    @staticmethod
    def _project(sessions: dict[str, Session], events: list[Event]) -> list[Session]:
        by_wallet: dict[str, list[Event]] = {}
        for event in events:
            if event.wallet is not None and event.seq is not None:
                by_wallet.setdefault(event.wallet, []).append(event)
            # factory admin events and batch failures (no seq) change no session
        changed = []
        for wallet, own in by_wallet.items():
            old = sessions.get(wallet)
            state = apply_all(old, own)
            if state.seq_gaps and (old is None or old.seq_gaps != state.seq_gaps):
                log.error("session %s: sequence gap (%s)", wallet, state.gap_note)
            changed.append(state)
        return changed

    async def _emit(self, change: Change) -> None:
        if self.on_change is not None:
            await self.on_change(change)
