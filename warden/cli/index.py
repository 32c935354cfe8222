"""`warden index`: run the indexer alone, to benchmark or debug it without rules or
executor. Follows the chain until Ctrl-C, or stops once caught up with `--to-head`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from eth_utils.address import is_address, to_checksum_address

from chain import ChainClient, FatalError, RetryableError, RetryPolicy
from indexer import Indexer, IndexerConfig, IndexerStore, Progress, RangeSizing, open_database

EXIT_CONFIG = 2
EXIT_RUNTIME = 1


def add_index_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "index",
        help="run only the indexer: follow the chain into a SQLite file",
        description="Index the sessions of one SessionWalletFactory into a SQLite database. "
        "Resumes from the database's checkpoint. Without --to-head it keeps following the "
        "chain until Ctrl-C.",
    )
    p.add_argument(
        "--rpc",
        action="append",
        required=True,
        metavar="URL",
        help="JSON-RPC endpoint; repeat for failover, in order of preference",
    )
    p.add_argument("--factory", required=True, help="address of the SessionWalletFactory")
    p.add_argument("--db", required=True, help="SQLite file (created if missing)")
    p.add_argument(
        "--start-block",
        type=int,
        default=0,
        help="first block to index: the factory's deployment block (default 0)",
    )
    p.add_argument("--chain-id", type=int, help="refuse endpoints serving another chain")
    p.add_argument(
        "--confirmations",
        type=int,
        default=0,
        help="index up to head minus this many blocks (default 0)",
    )
    p.add_argument(
        "--reorg-window",
        type=int,
        default=64,
        help="recent block hashes kept to resolve reorgs (default 64)",
    )
    p.add_argument(
        "--range",
        type=int,
        default=2_000,
        dest="initial_range",
        help="first eth_getLogs range in blocks; adapts as it goes (default 2000)",
    )
    p.add_argument(
        "--max-range",
        type=int,
        default=50_000,
        help="largest eth_getLogs range in blocks (default 50000)",
    )
    p.add_argument("--concurrency", type=int, default=4, help="ranges in flight (default 4)")
    p.add_argument("--poll", type=float, default=1.0, help="seconds between head polls")
    p.add_argument(
        "--retry-initial",
        type=float,
        default=1.0,
        help="first retry delay in seconds; grows x1.5 up to 30 s (default 1)",
    )
    p.add_argument("--to-head", action="store_true", help="stop once caught up with the head")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run_index_command(args: argparse.Namespace) -> int:
    if not is_address(args.factory):
        print(f"warden index: --factory {args.factory!r} is not an address", file=sys.stderr)
        return EXIT_CONFIG
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_index(args))
    except FatalError as exc:
        print(f"warden index: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except RetryableError as exc:  # still failing after every retry and endpoint
        print(
            f"warden index: the node did not answer after retrying: {exc}\n"
            "Check that --rpc points at a running node.",
            file=sys.stderr,
        )
        return EXIT_RUNTIME


async def _index(args: argparse.Namespace) -> int:
    config = IndexerConfig(
        factory=to_checksum_address(args.factory),
        start_block=args.start_block,
        confirmations=args.confirmations,
        reorg_window=args.reorg_window,
        concurrency=args.concurrency,
        sizing=RangeSizing(initial=min(args.initial_range, args.max_range), maximum=args.max_range),
    )
    db = await open_database(args.db)
    try:
        store = IndexerStore(db)
        await store.setup()
        async with ChainClient(
            args.rpc, chain_id=args.chain_id, retry=RetryPolicy(initial=args.retry_initial)
        ) as client:
            await client.connect()
            progress = None if args.quiet else Progress()
            indexer = Indexer(client, store, config, progress=progress)
            if args.to_head:
                cp = await indexer.sync_to_head()
            else:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await indexer.run(stop, args.poll)
                cp = await indexer.checkpoint()
            n = await store.counts()
            print(
                f"indexed to block {cp.number}: {n['sessions']} sessions, {n['events']} events, "
                f"{n['ignored_logs']} ignored logs, {indexer.reorgs} reorgs"
            )
    finally:
        await db.close()
    return 0
