"""The indexer: backfill to the safe head, then follow it, surviving reorgs and crashes.

One round (`step()`, or `advance()` which waits out transient failures) asks the node for
its head and the header at our checkpoint's height:

- checkpoint replaced → find the common ancestor, roll back to it in one transaction,
  replay the sessions that lost events, yield a `Reorg`;
- far behind → backfill: adaptive `eth_getLogs` ranges, several in flight (each decoded
  as it arrives, `indexer.decoding`), committed strictly in order, each range with its
  events, projection and checkpoint in one transaction, a `Block(backfill=True)` yielded
  after each, progress reported;
- within the reorg window → follow: every header fetched and linked by parent hash,
  logs fetched by block hash and checked against each header's logsBloom
  (`indexer.verify`), committed together, a `Block` yielded. A block whose logs a node
  keeps contradicting is not committed: the round ends before it (ERROR, counted in
  `bloom_mismatches`), and the next round asks again.

A round that committed yields `Finalized` when the blocks older than the reorg window
moved up. Every value is yielded after its commit and before the next commit starts, so
the caller (the daemon hands them to the rules) acts on what is stored; a kill at any
moment loses at most the uncommitted batch, which the next start fetches again from the
checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass
from typing import Any

from chain.abi import checksum, topics_filter
from chain.client import ChainClient
from chain.errors import BadResponse, RetryableError, UnknownBlock
from indexer.collector import indexing_pace
from indexer.decoding import RangeDecoder
from indexer.failures import FailureStreak
from indexer.fetch import Fetcher, RangeSizing, header_ref
from indexer.logs import Decoded, decode, select
from indexer.progress import Progress
from indexer.projection import Event, Session, apply_all
from indexer.reorg import checkpoint_still_canonical, common_ancestor, finalized, link
from indexer.settings import ChainSettings
from indexer.store import Batch, BlockRef, IndexerStore
from indexer.updates import Block, Finalized, Reorg, Update
from indexer.verify import LogsContradictHeader, LogVerifier, Watched

log = logging.getLogger("warden.indexer")

FOLLOW_BATCH = 100  # blocks per commit while following


@dataclass(frozen=True)
class _Range:
    """A backfill range fetched and decoded, waiting for its turn to commit."""

    decoded: Decoded
    headers: dict[int, BlockRef]
    end: BlockRef


class Indexer:
    """Indexes the sessions of `factory` (checksummed) as `settings` say: from
    `start_block` (the factory's deployment: nothing before it matters) up to the head
    minus `confirmations`, keeping `reorg_window` recent headers to find a common
    ancestor, with `concurrency` backfill ranges in flight, each sized toward `log_target`
    logs (from `log_range` blocks first, up to `max_log_range`)."""

    def __init__(
        self,
        client: ChainClient,
        store: IndexerStore,
        settings: ChainSettings,
        *,
        factory: str,
        progress: Progress | None = None,
    ) -> None:
        if settings.confirmations is None:
            raise ValueError(
                "chain.confirmations is undecided (None): set it, or load the settings "
                "through WardenConfig, which decides it for the chain"
            )
        self.client = client
        self.store = store
        self.settings = settings
        self.confirmations: int = settings.confirmations
        self.factory = factory
        self.progress = progress
        sizing = RangeSizing(
            initial=min(settings.log_range, settings.max_log_range),
            maximum=settings.max_log_range,
            target_logs=settings.log_target,
        )
        self.fetcher = Fetcher(client, topics_filter(), sizing)
        self.verifier = LogVerifier(
            client,
            Watched.of(factory),
            self.fetcher.logs_at,
            retries=settings.log_check_retries,
            backoff=settings.log_check_backoff,
        )
        self.head: int | None = None  # the node's head at the last round
        self.idle = False  # the last round found nothing to index: wait before the next
        self.reorgs = 0
        self._finalized: int | None = None  # the last `Finalized` yielded
        self.failures = FailureStreak()  # rounds failed in a row (see `advance`)
        self.decode_worker_peak_kb = 0  # the largest decode worker's peak RSS (VmHWM)

    @property
    def bloom_false_positives(self) -> int:
        """Blocks whose bloom promised logs of ours that the receipts proved absent."""
        return self.verifier.false_positives

    @property
    def bloom_mismatches(self) -> int:
        """Blocks a node kept contradicting their own logsBloom (each time it happened)."""
        return self.verifier.mismatches

    # -- driving ---------------------------------------------------------------------
    async def checkpoint(self) -> BlockRef:
        cp = await self.store.checkpoint()
        if cp is None:
            return BlockRef(self.settings.start_block - 1, "", "", 0)
        return cp

    async def step(self) -> AsyncGenerator[Update, None]:
        """One round: reorg check, then backfill or follow, yielding after each commit.
        Afterwards `idle` says whether there was nothing to do."""
        self.idle = False
        cp = await self.checkpoint()
        head, cp_header = await self._head_and(cp)
        self.head = head
        if not checkpoint_still_canonical(cp, cp_header):
            yield await self._reorg(cp)
            return
        target = head - self.confirmations
        if target <= cp.number:
            self.idle = True
            return
        window_floor = finalized(head, self.settings.reorg_window)
        if cp.number < window_floor:
            async for block in self._backfill(cp.number + 1, min(target, window_floor)):
                yield block
        else:
            followed, failure = await self._follow(cp, min(target, cp.number + FOLLOW_BATCH))
            if followed is not None:
                yield followed
            if failure is not None:
                raise failure
        if self._finalized is None or window_floor > self._finalized:
            self._finalized = window_floor
            yield Finalized(window_floor)

    async def advance(self) -> AsyncGenerator[Update, None]:
        """`step`, where a transient failure is logged and waited out (`idle` stays
        False: call again). Each round is counted in `failures`: a commit or a finished
        round resets the streak, a failed round extends it (readiness reads it)."""
        failures = self.failures
        failures.begin()
        try:
            async for update in self.step():
                failures.succeeded()  # committed: the node answers
                yield update
                failures.begin()  # the rest of the round, once the caller is done
            failures.succeeded()
        except LogsContradictHeader as exc:
            # logged at ERROR and counted where it was found; the block stays unindexed,
            # and a node that keeps contradicting itself is a failing node for readiness
            failures.failed(exc)
            await asyncio.sleep(self.client.retry.initial)
        except UnknownBlock as exc:
            failures.succeeded()  # the node answered: the chain moved
            log.info("chain moved during a fetch (%s); checking for a reorg", exc)
        except RetryableError as exc:
            failures.failed(exc)
            log.warning(
                "indexer step failed (%d in a row), retrying: %s", failures.consecutive, exc
            )
            await asyncio.sleep(self.client.retry.initial)
        finally:
            failures.end()

    async def sync_to_head(self) -> BlockRef:
        """Index until caught up with the safe head, then return the checkpoint."""
        while True:
            await self._drain()
            if self.idle:
                return await self.checkpoint()

    async def run(self, stop: asyncio.Event, poll_interval: float = 1.0) -> None:
        """Follow the chain until `stop` is set. Transient failures wait and retry."""
        while not stop.is_set():
            await self._drain()
            if self.idle:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), poll_interval)

    async def _drain(self) -> None:
        """One `advance` round with nobody acting on what it yields."""
        async with contextlib.aclosing(self.advance()) as updates:
            async for _ in updates:
                pass

    async def _head_and(self, cp: BlockRef) -> tuple[int, BlockRef | None]:
        if cp.number < 0:
            return await self.client.block_number(), None
        number, header = await self.client.batch(
            [("eth_blockNumber", []), ("eth_getBlockByNumber", [hex(cp.number), False])]
        )
        return int(number, 16), header_ref(header) if header else None

    # -- reorgs ----------------------------------------------------------------------
    async def _reorg(self, cp: BlockRef) -> Reorg:
        stored = await self.store.blocks(cp.number - self.settings.reorg_window)
        canonical = await self.fetcher.canonical_hashes([b.number for b in stored])
        ancestor = common_ancestor(stored, canonical)
        if ancestor is None:
            ancestor = await self._deep_ancestor(min((b.number for b in stored), default=cp.number))
        result = await self.store.rollback(ancestor)
        event = Reorg(
            ancestor, cp.number - ancestor.number, cp, tuple(result.sessions), tuple(result.removed)
        )
        self.reorgs += 1
        log.warning(
            "reorg: %d indexed blocks replaced; rolled back to block %d (%s), %d events "
            "removed, %d sessions replayed, %d removed",
            event.depth, ancestor.number, ancestor.hash[:10] or "start", result.events_removed,
            len(result.sessions), len(result.removed),
        )  # fmt: skip
        return event

    async def _deep_ancestor(self, below: int) -> BlockRef:
        """The reorg went past the stored window: check older blocks holding events."""
        log.error(
            "reorg deeper than the %d-block window (no stored header below %d survived); "
            "searching older blocks with events for the common ancestor",
            self.settings.reorg_window,
            below,
        )
        while True:
            older = await self.store.event_blocks_below(below, 200)
            if not older:
                start = self.settings.start_block - 1
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
    async def _backfill(self, lo: int, hi: int) -> AsyncGenerator[Block, None]:
        """Ranges fetched (with their headers) and decoded ahead, `concurrency` in flight,
        each in its own task; committed strictly in order, each yielded after its commit.
        A range decodes while the one before it commits (`indexer.decoding`)."""
        if self.progress:
            self.progress.begin(lo, hi)
        decoder = RangeDecoder(self.settings.decode_workers)
        pending: deque[asyncio.Task[_Range]] = deque()
        nxt = first = lo
        pace = contextlib.ExitStack()
        pace.enter_context(indexing_pace())  # see indexer/collector.py
        try:
            while nxt <= hi or pending:
                while nxt <= hi and len(pending) < self.settings.concurrency:
                    end = min(hi, nxt + self.fetcher.size - 1)
                    pending.append(asyncio.create_task(self._fetch_range(nxt, end, decoder)))
                    nxt = end + 1
                fetched = await pending.popleft()
                end_header = fetched.end
                events, changed = await self._store(fetched.decoded, fetched.headers, end_header)
                yield Block(first, end_header, changed, backfill=True)
                first = end_header.number + 1
                if self.progress:
                    self.progress.advance(end_header.number, events)
        finally:
            try:
                for task in pending:
                    task.cancel()
                await asyncio.gather(*pending, return_exceptions=True)
                await decoder.close()
                self.decode_worker_peak_kb = max(self.decode_worker_peak_kb, decoder.peak_kb)
            finally:
                pace.close()
        if self.progress:
            self.progress.done()

    async def _fetch_range(self, lo: int, hi: int, decoder: RangeDecoder) -> _Range:
        logs, end = await self.fetcher.range_logs(lo, hi)
        headers = await self._headers_for(logs, [end])
        return _Range(await decoder.decode(logs, headers), headers, end)

    # -- following -------------------------------------------------------------------
    async def _follow(
        self, cp: BlockRef, hi: int
    ) -> tuple[Block | None, LogsContradictHeader | None]:
        """Fetch, check and commit blocks cp+1..hi. Every block's logs are checked against
        its header's bloom first (`indexer.verify`); a block a node keeps contradicting is
        not committed, nor anything after it: the blocks before it are, and the failure
        is returned for the caller to raise after yielding them."""
        with indexing_pace():  # up to FOLLOW_BATCH blocks of logs: see indexer/collector.py
            return await self._follow_blocks(cp, hi)

    async def _follow_blocks(
        self, cp: BlockRef, hi: int
    ) -> tuple[Block | None, LogsContradictHeader | None]:
        headers = await self.fetcher.headers(range(cp.number + 1, hi + 1))
        linked = link(cp, [headers[n] for n in range(cp.number + 1, hi + 1)])
        if linked is None:
            # The chain moved between our reorg check and these headers; the next step
            # sees it at the checkpoint (or the headers were mixed branches: fetch again).
            raise UnknownBlock(f"headers {cp.number + 1}-{hi} do not link to block {cp.number}")
        blocks = [nb.block for nb in linked]
        answers = await self.fetcher.block_logs(blocks)
        logs: list[dict[str, Any]] = []
        safe: list[BlockRef] = []
        failure: LogsContradictHeader | None = None
        for block, (block_logs, endpoint) in zip(blocks, answers, strict=True):
            try:
                logs.extend(await self.verifier.verified(block, block_logs, endpoint))
            except LogsContradictHeader as exc:
                failure = exc
                break
            safe.append(block)
        if not safe:
            return None, failure
        _, changed = await self._commit(logs, safe, safe[-1])
        return Block(cp.number + 1, safe[-1], changed), failure

    # -- commit ----------------------------------------------------------------------
    async def _commit(
        self,
        logs: list[dict[str, Any]],
        blocks: Sequence[BlockRef],
        checkpoint: BlockRef,
    ) -> tuple[int, tuple[Session, ...]]:
        """Store the logs, their projection and the new checkpoint in one transaction:
        how many events, and the sessions they changed."""
        headers = await self._headers_for(logs, blocks)
        return await self._store(decode(logs, headers), headers, checkpoint)

    async def _headers_for(
        self, logs: list[dict[str, Any]], blocks: Sequence[BlockRef]
    ) -> dict[int, BlockRef]:
        """`blocks` and the header of every other block the logs are in, each log checked
        to come from its block's header (same hash)."""
        headers = {b.number: b for b in blocks}
        numbers = [int(r["blockNumber"], 16) for r in logs]
        missing = sorted(set(numbers) - headers.keys())
        if missing:
            headers.update(await self.fetcher.headers(missing))
        for number, r in zip(numbers, logs, strict=True):
            if headers[number].hash != r["blockHash"]:
                raise BadResponse(
                    f"log in block {number} has hash {r['blockHash']}, the "
                    f"header has {headers[number].hash}: fetched across a reorg"
                )
        return headers

    async def _store(
        self, decoded: Decoded, headers: dict[int, BlockRef], checkpoint: BlockRef
    ) -> tuple[int, tuple[Session, ...]]:
        """Filter decoded logs against the stored sessions, project, and commit them with
        their headers and the checkpoint in one transaction."""
        candidates = [checksum(bytes.fromhex(a[2:])) for a in decoded.wallets]
        sessions = await self.store.sessions(candidates)
        known = {w.lower() for w in sessions}
        classified = select(decoded, self.factory, known.__contains__)
        changed = self._project(sessions, classified.events)
        stored_blocks = sorted(headers.values(), key=lambda b: b.number)
        await self.store.commit(
            Batch(stored_blocks, classified.events, classified.ignored, changed, checkpoint),
            self.settings.reorg_window,
        )
        if classified.ignored:
            log.info("ignored %d look-alike or malformed logs", len(classified.ignored))
        return len(classified.events), tuple(changed)

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
