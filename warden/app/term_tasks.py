"""The notification tasks a leader runs beside its loop for one term: delivery to the
channels and retention. Each runs on a database connection of its own, fenced like the
loop's (a deposed leader's writes are refused), and ends with the term."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from database import Database, open_database
from notify import Deliverer, DeliveryStats, HttpPoster, Pruner, Router
from warden.app.settings import WardenConfig
from warden.app.settings import target as database_target


@contextlib.asynccontextmanager
async def _own_connection(db: Database, cfg: WardenConfig) -> AsyncIterator[Database]:
    own = await open_database(database_target(cfg.database))
    own.fence, own.idle_limit_ms = db.fence, db.idle_limit_ms
    try:
        yield own
    finally:
        await own.close()


async def _ended(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


@contextlib.asynccontextmanager
async def delivering(
    db: Database, cfg: WardenConfig, stats: DeliveryStats
) -> AsyncIterator[Deliverer | None]:
    """The delivery task for this term (None without channels: nothing runs). Entered
    before the loop logs anything in the term: the channels' route cursors are placed
    first (`notify.routing`)."""
    if not cfg.notify.channels:
        await Router(db, []).start()  # no channel is owed what this term logs
        yield None
        return
    stop = asyncio.Event()
    async with _own_connection(db, cfg) as own, HttpPoster() as poster:
        deliverer = Deliverer(own, cfg.notify, poster, stats=stats)
        await deliverer.start()
        task = asyncio.create_task(deliverer.run(stop), name="notify")
        try:
            yield deliverer
        finally:
            await _ended(task, stop)


@contextlib.asynccontextmanager
async def pruning(db: Database, cfg: WardenConfig) -> AsyncIterator[None]:
    """Retention (`notify.retention`) for this term: small batches every `interval`
    seconds; 0: none."""
    if cfg.notify.retention.interval <= 0:
        yield
        return
    stop = asyncio.Event()
    async with _own_connection(db, cfg) as own:
        task = asyncio.create_task(Pruner(own, cfg.notify.retention).run(stop), name="notify-prune")
        try:
            yield
        finally:
            await _ended(task, stop)
