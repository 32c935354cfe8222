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
from pydantic import ValidationError

from chain import ChainClient, FatalError, RetryableError
from database import open_database
from indexer import ChainSettings, Indexer, IndexerStore, Progress
from warden.cli.exit_codes import ExitCode

_OPTIONS = {"log_range": "--range", "max_log_range": "--max-range", "poll_interval": "--poll"}


def _default(key: str) -> Any:
    """The option's default: the `chain:` setting's, so both mean the same."""
    return ChainSettings.model_fields[key].default


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
    p.add_argument(
        "--db",
        required=True,
        help="SQLite file (created if missing) or postgresql://user@host/db URL (a password "
        "is best kept in PGPASSWORD or ~/.pgpass)",
    )
    p.add_argument(
        "--start-block",
        type=int,
        default=_default("start_block"),
        help="first block to index: the factory's deployment block (default %(default)s)",
    )
    p.add_argument("--chain-id", type=int, help="refuse endpoints serving another chain")
    p.add_argument(
        "--confirmations",
        type=int,
        # The config decides 0 or 2 by the chain; this debugging tool indexes to the head.
        default=0,
        help="index up to head minus this many blocks (default %(default)s)",
    )
    p.add_argument(
        "--reorg-window",
        type=int,
        default=_default("reorg_window"),
        help="recent block hashes kept to resolve reorgs (default %(default)s)",
    )
    p.add_argument(
        "--range",
        type=int,
        default=_default("log_range"),
        dest="initial_range",
        help="first eth_getLogs range in blocks; adapts as it goes (default %(default)s)",
    )
    p.add_argument(
        "--max-range",
        type=int,
        default=_default("max_log_range"),
        help="largest eth_getLogs range in blocks (default %(default)s)",
    )
    p.add_argument(
        "--concurrency",
        type=int,
        default=_default("concurrency"),
        help="ranges in flight (default %(default)s)",
    )
    p.add_argument(
        "--poll",
        type=float,
        default=_default("poll_interval"),
        help="seconds between head polls (default %(default)s)",
    )
    p.add_argument(
        "--retry-initial",
        type=float,
        default=_default("retry_initial"),
        help="first retry delay in seconds; grows x1.5 up to 30 s (default %(default)s)",
    )
    p.add_argument("--to-head", action="store_true", help="stop once caught up with the head")
    p.add_argument("--quiet", action="store_true", help="no progress lines")


def run_index_command(args: argparse.Namespace) -> int:
    if not is_address(args.factory):
        print(f"warden index: --factory {args.factory!r} is not an address", file=sys.stderr)
        return ExitCode.CONFIG
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return asyncio.run(_index(args))
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            key = str(error["loc"][0])
            option = _OPTIONS.get(key, "--" + key.replace("_", "-"))
            print(f"warden index: {option}: {error['msg']}", file=sys.stderr)
        return ExitCode.CONFIG
    except FatalError as exc:
        print(f"warden index: {exc}", file=sys.stderr)
        return ExitCode.RUNTIME_FAILURE
    except RetryableError as exc:  # still failing after every retry and endpoint
        print(
            f"warden index: the node did not answer after retrying: {exc}\n"
            "Check that --rpc points at a running node.",
            file=sys.stderr,
        )
        return ExitCode.RUNTIME_FAILURE


async def _index(args: argparse.Namespace) -> int:
    settings = ChainSettings(
        rpc=args.rpc,
        chain_id=args.chain_id,
        factory=to_checksum_address(args.factory),
        start_block=args.start_block,
        confirmations=args.confirmations,
        reorg_window=args.reorg_window,
        poll_interval=args.poll,
        concurrency=args.concurrency,
        log_range=args.initial_range,
        max_log_range=args.max_range,
        retry_initial=args.retry_initial,
    )
    assert settings.factory is not None
    db = await open_database(args.db)
    try:
        store = IndexerStore(db)  # SQLite or PostgreSQL, through the database seam
        await store.setup()
        async with ChainClient(
            settings.rpc, chain_id=settings.chain_id, retry=settings.retry_policy()
        ) as client:
            await client.connect()
            progress = None if args.quiet else Progress()
            indexer = Indexer(client, store, settings, factory=settings.factory, progress=progress)
            if args.to_head:
                cp = await indexer.sync_to_head()
            else:
                stop = asyncio.Event()
                loop = asyncio.get_running_loop()
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.add_signal_handler(sig, stop.set)
                await indexer.run(stop, settings.poll_interval)
                cp = await indexer.checkpoint()
            n = await store.counts()
            print(
                f"indexed to block {cp.number}: {n['sessions']} sessions, {n['events']} events, "
                f"{n['ignored_logs']} ignored logs, {indexer.reorgs} reorgs"
            )
    finally:
        await db.close()
    return ExitCode.OK
