"""`warden notify`: send a test event to a channel, list deliveries, re-drive dead ones.

    warden notify test CHANNEL --config warden.yaml     # one notify.test event, now
    warden notify list --config warden.yaml [--state dead] [--channel NAME] [--limit 50]
    warden notify redrive --config warden.yaml [CHANNEL]   # dead → pending, attempts from 0

`test` sends directly (not through the outbox) and prints the answer, so a channel can
be checked before the daemon runs; it exits 0 when the channel accepted the event, 1 when
not. `list` and `redrive` work on the configured database; the running leader picks the
re-driven deliveries up at its next look (within `notify.delivery.poll`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

from database import open_database
from notify import STATES, Deliveries, HttpPoster, NotifyEvent, Severity, attempt
from warden.app.settings import ConfigError, WardenConfig, load_config
from warden.app.settings import target as database_target
from warden.cli.exit_codes import ExitCode


def add_notify_parser(subparsers: Any) -> None:
    notify = subparsers.add_parser(
        "notify", help="notification channels: send a test event, list or re-drive deliveries"
    )
    sub = notify.add_subparsers(dest="notify_command", metavar="SUBCOMMAND", required=True)
    test = sub.add_parser("test", help="send one `notify.test` event to CHANNEL now")
    test.add_argument("channel", metavar="CHANNEL", help="a channel's `name` in notify.channels")
    listing = sub.add_parser("list", help="deliveries, oldest first, with their state")
    listing.add_argument("--state", choices=STATES, help="only deliveries in this state")
    listing.add_argument("--channel", help="only this channel's deliveries")
    listing.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    redrive = sub.add_parser("redrive", help="dead deliveries back to pending (attempts from 0)")
    redrive.add_argument("channel", nargs="?", metavar="CHANNEL", help="only this channel's")
    for p in (test, listing, redrive):
        p.add_argument("--config", required=True, help="daemon config file (YAML)")


def run_notify_command(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config, os.environ)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return ExitCode.CONFIG
    named = getattr(args, "channel", None)
    if named is not None and cfg.notify.channel(named) is None:
        names = ", ".join(c.name for c in cfg.notify.channels) or "none configured"
        print(f"no channel named {named!r} in {args.config} (channels: {names})", file=sys.stderr)
        return ExitCode.CONFIG
    if args.notify_command == "test":
        return asyncio.run(_test(cfg, args.channel))
    if args.notify_command == "list":
        return asyncio.run(_list(cfg, args.state, args.channel, args.limit))
    return asyncio.run(_redrive(cfg, args.channel))


async def _test(cfg: WardenConfig, name: str) -> int:
    channel = cfg.notify.channel(name)
    assert channel is not None
    now = time.time_ns() // 1_000_000
    event = NotifyEvent(
        id=f"notify.test:{name}:{now}", kind="notify.test", severity=Severity.INFO, at_ms=now,
        data={"message": "test event from Warden", "channel": name},
    )  # fmt: skip
    async with HttpPoster() as poster:
        outcome = await attempt(channel, event.body(), poster, cfg.notify, now // 1000)
    if outcome.ok:
        print(f"{name}: delivered {event.id} ({outcome.detail})")
        return ExitCode.OK
    print(f"{name}: not delivered: {outcome.detail}", file=sys.stderr)
    return ExitCode.RUNTIME_FAILURE


async def _list(cfg: WardenConfig, state: str | None, channel: str | None, limit: int) -> int:
    db = await open_database(database_target(cfg.database), read_only=True)
    try:
        rows = await Deliveries(db).page(0, max(1, limit), state=state, channel=channel)
    finally:
        await db.close()
    for d in rows[:limit]:
        error = f"  last error: {d.last_error}" if d.last_error else ""
        print(f"{d.id:>8}  {d.channel:<16} {d.state:<9} {d.attempts:>3}x  {d.kind:<26} "
              f"{d.event_id}{error}")  # fmt: skip
    if not rows:
        print("no deliveries")
    return ExitCode.OK


async def _redrive(cfg: WardenConfig, channel: str | None) -> int:
    db = await open_database(database_target(cfg.database))
    try:
        n = await Deliveries(db).redrive(time.time_ns() // 1_000_000, channel=channel)
    finally:
        await db.close()
    print(f"{n} dead deliver{'y' if n == 1 else 'ies'} pending again")
    return ExitCode.OK
