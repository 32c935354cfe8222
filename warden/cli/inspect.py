"""`warden inspect WALLET` and `warden status`: readable views for an operator.

`inspect` reads the database file directly, read-only, through the indexer's and the
executor's readers (it works with the daemon running or stopped): the
session's parameters, balance and budget, the timeline of its events, and every rule
firing with its transactions. `status` asks the running daemon's API, since only the
daemon knows the head, the lag and the relayer's balance.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
from eth_utils.address import to_checksum_address

from chain.units import token_units
from database import is_postgres_url, open_database, redact_database_url
from executor import OutboxReads
from executor.history import IntentHistory
from indexer import Event, Session, SessionReads
from warden.cli.exit_codes import ExitCode


def add_inspect_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    inspect = sub.add_parser(
        "inspect",
        help="show one session: parameters, balance, events, rule firings, transactions",
        description="A readable view of one session from the daemon's database file.",
    )
    inspect.add_argument("wallet", help="the session wallet address (0x…)")
    inspect.add_argument(
        "--db",
        default="warden.sqlite",
        help="SQLite file (default warden.sqlite) or postgresql://user@host/db URL (a "
        "password is best kept in PGPASSWORD or ~/.pgpass)",
    )
    inspect.add_argument("--decimals", type=int, default=18, help="token decimals (default 18)")
    status = sub.add_parser(
        "status",
        help="ask a running daemon for its status (head, lag, relayer, intents)",
        description="GET /status from a running daemon's API and print it readably.",
    )
    status.add_argument("--url", default="http://127.0.0.1:8080", help="the daemon's API")
    status.add_argument("--token", help="bearer token, if the API requires one")
    status.add_argument("--json", action="store_true", help="print the raw JSON")


def run_inspect_command(args: argparse.Namespace) -> int:
    wallet = args.wallet
    if not (wallet.startswith("0x") and len(wallet) == 42):
        print(f"warden inspect: {wallet!r} is not an address (0x + 40 hex)", file=sys.stderr)
        return ExitCode.CONFIG
    if not is_postgres_url(args.db) and not Path(args.db).exists():
        print(f"warden inspect: no database at {args.db} (use --db)", file=sys.stderr)
        return ExitCode.CONFIG
    return asyncio.run(_inspect(args.db, wallet, args.decimals))


async def _inspect(source: str, wallet: str, decimals: int) -> int:
    shown = redact_database_url(source)
    db = await open_database(source, read_only=True)
    try:
        reads = SessionReads(db)
        async with db.snapshot():  # one read view: the session, its events and intents agree
            session = await reads.session(to_checksum_address(wallet.lower()))
            if session is None:
                print(
                    f"warden inspect: {wallet} is not an indexed session in {shown}",
                    file=sys.stderr,
                )
                return ExitCode.RUNTIME_FAILURE
            events = (await reads.events(session.wallet)).items
            outbox = OutboxReads(db)
            history = await outbox.history(session.wallet) if await outbox.available() else None
    finally:
        await db.close()
    print(render_session(session, events, decimals))
    print(render_intents(history))
    return ExitCode.OK


def _time(ts: int | None) -> str:
    if ts is None:
        return "-"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_session(s: Session, events: list[Event], decimals: int) -> str:
    def units(v: int) -> str:
        return token_units(v, decimals)

    lines = [
        f"session {s.wallet}  [{s.status}{' · ' + str(s.close_reason) if s.close_reason else ''}]",
        f"  owner      {s.owner}",
        f"  operator   {s.operator}",
        f"  token      {s.token}",
        f"  policy     {s.policy or '(none)'}",
        f"  balance    {units(s.balance)}   deposited {units(s.deposit)}   "
        f"withdrawn {units(s.withdrawn)}",
        f"  budget     {units(s.budget)}   spent {units(s.spent)}   "
        f"remaining {units(s.remaining_budget)}",
        f"  stop-loss  {units(s.stop_loss) if s.stop_loss else '-'}   "
        f"take-profit {units(s.take_profit) if s.take_profit else '-'}",
        f"  expiry     {_time(s.expiry) if s.expiry < 2**40 else s.expiry}",
        f"  created    {_time(s.created_at)} (block {s.created_block})   "
        f"last activity {_time(s.last_activity)}",
    ]
    if s.seq_gaps:
        lines.append(f"  WARNING    {s.seq_gaps} sequence gap(s): {s.gap_note}")
    lines.append("timeline")
    for e in events:
        detail = ", ".join(
            f"{k}={units(v) if isinstance(v, int) and k not in ('seq', 'expiry') else v}"
            for k, v in e.args.items()
            if k not in ("wallet", "targets", "salt", "policy")
        )
        lines.append(f"  {_time(e.timestamp)}  block {e.block_number:<8} {e.name:<15} {detail}")
    return "\n".join(lines)


def render_intents(history: list[IntentHistory] | None) -> str:
    """The rule firings of a session (None: the database has no executor tables)."""
    if history is None:
        return "rule firings: none (no executor tables in this database)"
    if not history:
        return "rule firings: none"
    lines = ["rule firings"]
    for h in history:
        i = h.intent
        lines.append(f"  {_time(i.triggered_at)}  {i.rule}: {i.action} ({i.reason}) → {i.state}")
        if i.detail:
            lines.append(f"      {i.detail}")
        for tx in h.transactions:
            lines.append(
                f"      tx {tx.hash} nonce {tx.nonce} max fee {tx.max_fee_per_gas} wei: {tx.state}"
            )
    return "\n".join(lines)


def run_status_command(args: argparse.Namespace) -> int:
    request = urllib.request.Request(args.url.rstrip("/") + "/status")
    if args.token:
        request.add_header("Authorization", f"Bearer {args.token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body: dict[str, Any] = orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        print(f"warden status: {args.url} answered HTTP {exc.code}", file=sys.stderr)
        return ExitCode.RUNTIME_FAILURE
    except (urllib.error.URLError, OSError) as exc:
        print(
            f"warden status: no daemon answers at {args.url} ({exc}); is `warden run` "
            "running, and on which --url?",
            file=sys.stderr,
        )
        return ExitCode.RUNTIME_FAILURE
    if args.json:
        print(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())
        return ExitCode.OK
    for key, value in body.items():
        if isinstance(value, dict):
            inner = ", ".join(f"{k} {v}" for k, v in value.items())
            print(f"{key:<15} {inner}")
        else:
            print(f"{key:<15} {value}")
    return ExitCode.OK
