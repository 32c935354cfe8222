"""Decoding a backfill's ranges, in this process or in worker processes.

Ranges are independent until their in-order commit, so a range's logs can be decoded
(`indexer.logs.decode`: the part of classifying that needs no store) while the range
before it commits. `chain.decode_workers` says where:

- 0: in this process, inside the range's fetch task: it still overlaps the commit of the
  range before (SQLite works with the GIL released), with no process to manage;
- N > 0: in N worker processes. The logs go to a worker as their JSON text, the records
  come back as tuples, and this process rebuilds the `Event`s: that costs this process
  about a third of decoding itself, and the rest runs on another core.

Workers are forked from a clean server process (multiprocessing's "forkserver", with
the decoder imported once), never from this one with its threads and connections. Each
one watches that Warden's process is alive and exits when it is not, so even a kill -9
of Warden leaves no orphan (then the forkserver, which lives as long as its workers,
exits too); `close()` stops them on every other way out of a backfill. A worker that dies
or cannot start turns into `DecodeWorkerFailed`, raised where the range is awaited: the
backfill round fails with a message that says how to decode in-process instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Iterable, Mapping
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import orjson

from chain.errors import RetryableError
from indexer.logs import Decoded, decode, decode_wire, from_wire
from indexer.store import BlockRef

log = logging.getLogger("warden.indexer")


class DecodeWorkerFailed(RetryableError):
    """A decode worker process died or could not start. Retryable (the next backfill
    round starts new workers: an out-of-memory kill passes), but every round that fails
    says so, and how to avoid workers altogether."""


def _die_with_parent(parent: int) -> None:
    """Worker initializer: exit as soon as the process that started the pool is gone.
    A worker forked by the forkserver is not that process's child, and holds (as
    multiprocessing arranges) both ends of its own task queue and the forkserver's
    liveness pipe: nothing would ever tell it that Warden died of a kill -9, and it and
    the forkserver would stay forever. So a thread of its own looks every 0.2 s."""

    def watch() -> None:
        while _alive(parent):
            time.sleep(0.2)
        os._exit(1)

    threading.Thread(target=watch, name="decode-worker-watchdog", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's: not ours to judge (pid reused)
    try:  # killed but not yet reaped by its own parent: gone for our purposes
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc: the signal test above is all there is


@functools.cache
def _context() -> Any:
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["indexer.logs"])
    return ctx


class RangeDecoder:
    """Decodes ranges for one backfill round; `close()` when the round ends."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._pool: concurrent.futures.ProcessPoolExecutor | None = None
        self.peak_kb = 0  # the largest worker's peak resident set (VmHWM), read at close

    async def decode(self, logs: list[dict[str, Any]], headers: Mapping[int, BlockRef]) -> Decoded:
        if self.workers <= 0 or not logs:
            return decode(logs, headers)
        pool = self._ensure_pool()
        payload = orjson.dumps(logs)
        timestamps = {n: h.timestamp for n, h in headers.items()}
        loop = asyncio.get_running_loop()
        try:
            wire = await loop.run_in_executor(pool, decode_wire, payload, timestamps)
        except BrokenProcessPool as exc:
            raise DecodeWorkerFailed(self._broken(exc)) from exc
        return from_wire(wire)

    def _ensure_pool(self) -> concurrent.futures.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = concurrent.futures.ProcessPoolExecutor(
                self.workers,
                mp_context=_context(),
                initializer=_die_with_parent,
                initargs=(os.getpid(),),
            )
        return self._pool

    def _broken(self, exc: BaseException) -> str:
        codes = sorted(
            {p.exitcode for p in _processes(self._pool) if p.exitcode is not None}, key=str
        )
        how = f" (exit code {', '.join(map(str, codes))})" if codes else ""
        return (
            f"a decode worker process died{how}: {exc}; the backfill round is abandoned and "
            "the next one starts new workers. If it keeps happening (out of memory?), set "
            "chain.decode_workers: 0 to decode in Warden's own process"
        )

    async def close(self) -> None:
        """Stop the workers: what they are doing is not needed any more."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        processes = list(_processes(pool))
        self.peak_kb = max([self.peak_kb, *(_peak_kb(p.pid) for p in processes)])
        pool.shutdown(wait=False, cancel_futures=True)
        # a worker busy with a range finishes it (tens of ms) before it sees the stop;
        # waited for off the event loop, and ended for good if it takes too long
        await asyncio.to_thread(_join, processes, 5.0)


def _processes(pool: concurrent.futures.ProcessPoolExecutor | None) -> Iterable[Any]:
    if pool is None:
        return ()
    found = getattr(pool, "_processes", None) or {}
    return list(found.values())


def _peak_kb(pid: int | None) -> int:
    try:
        for line in open(f"/proc/{pid}/status", encoding="ascii"):  # noqa: SIM115
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass  # gone already, or not Linux
    return 0


def _join(processes: list[Any], timeout: float) -> None:
    for p in processes:
        p.join(timeout)
        if p.is_alive():
            log.warning("decode worker %s did not stop in %.0fs: killing it", p.pid, timeout)
            p.kill()
            p.join(timeout)
