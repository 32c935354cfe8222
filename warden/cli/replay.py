"""`warden rules replay`: run a rule set over indexed history and print what would have
fired, when, for which sessions, with a summary per rule.

Each event of the index is applied to its session in chain order and the resulting
snapshot evaluated at that block's time; between events, time-driven checks (expiry,
idle) fall due exactly as the daemon's clock would have run them, and after the last
event the clock runs on to the indexed head. "Protected" is what closing at the trigger
would have kept compared with how the session really ended (its refund, or its balance
now if still open); a negative figure means the rule would have closed before gains.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chain.units import token_units
from database import is_postgres_url, open_database, redact_database_url
from indexer import BlockRef, Event, IndexerStore, Session, apply
from rules import (
    Decision,
    Evaluation,
    Evaluator,
    RulesError,
    RulesHost,
    Snapshot,
    load_rules,
    replay,
)
from warden.app.snapshots import snapshot_of
from warden.cli.exit_codes import ExitCode


def add_replay_parser(sub: Any) -> None:
    p: argparse.ArgumentParser = sub.add_parser(
        "replay",
        help="backtest rule files over an indexed database: what would have fired, and when",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="rule file or directory")
    p.add_argument(
        "--db",
        required=True,
        help="SQLite file or postgresql:// URL written by `warden index` (a password is "
        "best kept in PGPASSWORD or ~/.pgpass)",
    )
    p.add_argument(
        "--from-block",
        type=int,
        default=0,
        help="report firings from this block on (earlier history still counts)",
    )
    p.add_argument("--decimals", type=int, default=18, help="token decimals (default 18)")
    p.add_argument("--quiet", action="store_true", help="only the summary")


@dataclass
class Firing:
    block: int
    now: int
    wallet: str
    rule: str
    action: str
    reason: str
    balance: int


def run_replay_command(args: argparse.Namespace) -> int:
    try:
        ruleset = load_rules(args.files)
    except RulesError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return ExitCode.CONFIG
    return asyncio.run(_replay(args, Evaluator(RulesHost(), ruleset)))


async def _replay(args: argparse.Namespace, evaluator: Evaluator) -> int:
    shown = redact_database_url(args.db)
    if not is_postgres_url(args.db) and not Path(args.db).is_file():
        print(f"{shown}: no such database (run `warden index` first)", file=sys.stderr)
        return ExitCode.CONFIG
    db = await open_database(args.db, read_only=True)
    try:
        store = IndexerStore(db)
        cp = await store.checkpoint() if await db.has_table("checkpoint") else None
        if cp is None:
            print(f"{shown}: nothing indexed yet (run `warden index` first)", file=sys.stderr)
            return ExitCode.CONFIG
        events = await store.events()
        final = {s.wallet: s for s in await store.all_sessions()}
    finally:
        await db.close()
    firings: list[Firing] = []
    for block, evaluation, decision, snapshot_balance in _run(evaluator, events, cp, args.decimals):
        for intent in decision.intents:
            if block < args.from_block:
                continue
            firings.append(Firing(block, evaluation.now, intent.wallet, intent.rule,
                                  intent.action, intent.reason, snapshot_balance))  # fmt: skip
    for f in firings if not args.quiet else []:
        print(
            f"block {f.block:>9} t={f.now} {f.wallet} {f.rule}: {f.action} ({f.reason}) at "
            f"balance {token_units(f.balance, args.decimals)}"
        )
    _summary(firings, final, args.decimals, len(events), cp.number)
    return ExitCode.OK


def _run(
    evaluator: Evaluator, events: list[Event], head: BlockRef, decimals: int
) -> Iterator[tuple[int, Evaluation, Decision, int]]:
    """(block, evaluation, decision, balance) in chain order, through `rules.replay`. A
    time-driven firing is reported at the first indexed block the daemon would have seen
    it by: the next event's block, or the head."""
    sessions: dict[str, Session] = {}
    balance_at: dict[int, int] = {}  # snapshot position -> the balance it held
    block = head.number

    def changes() -> Iterator[tuple[Snapshot, int]]:
        nonlocal block
        for event in events:
            if event.wallet is None or event.seq is None:
                continue
            session = apply(sessions.get(event.wallet), event)
            sessions[event.wallet] = session
            balance_at[event.position] = session.balance
            block = event.block_number
            yield snapshot_of(session, decimals), event.timestamp
        block = head.number  # runs before replay's last clock sweep, to the head

    for evaluation, decision in replay(evaluator, changes(), until=head.timestamp):
        yield block, evaluation, decision, balance_at[evaluation.position]


def _summary(
    firings: list[Firing], final: dict[str, Session], decimals: int, events: int, head: int
) -> None:
    per_rule = Counter(f.rule for f in firings)
    protected: Counter[str] = Counter()
    for f in firings:
        if f.action != "close":
            continue
        end = final.get(f.wallet)
        if end is None:
            continue
        outcome = end.refund if end.status == "closed" else end.balance
        protected[f.rule] += f.balance - outcome
    print(f"\nreplayed {events:,} events to block {head:,}: {len(firings):,} firings")
    for rule, count in sorted(per_rule.items(), key=lambda kv: (-kv[1], kv[0])):
        value = protected.get(rule)
        extra = "" if value is None else f", protected {token_units(value, decimals)}"
        print(f"  {rule:<28} {count:>7,} fired{extra}")
