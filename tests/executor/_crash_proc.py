"""A process running the indexer and the executor on one database until every intent is
settled, that SIGKILLs itself at the Nth time the executor reaches a named point
("signed", "sent", "mined"): the crash tests' subject.

    python -m tests.executor._crash_proc RPC DB FACTORY START_BLOCK [POINT:N]
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from tests.executor._support import rig


def killer(spec: str | None) -> Callable[[str], None]:
    point, _, nth = (spec or "").partition(":")
    remaining = int(nth or 0)

    def hook(reached: str) -> None:
        nonlocal remaining
        if reached == point:
            remaining -= 1
            if remaining == 0:
                os.kill(os.getpid(), signal.SIGKILL)

    return hook


async def main(url: str, db: str, factory: str, start: int, spec: str | None) -> int:
    async with rig(
        url, Path(db), factory, start, hook=killer(spec),
        min_relayer_balance=0, max_batch_size=2, max_jobs_per_session=1000,
    ) as r:  # fmt: skip
        for _ in range(200):
            await r.step()
            counts = await r.outbox.counts()
            if counts["pending"] + counts["submitted"] + counts["mined"] == 0:
                return 0
    return 3  # not settled within the bound


if __name__ == "__main__":
    args = sys.argv[1:]
    sys.exit(
        asyncio.run(
            main(args[0], args[1], args[2], int(args[3]), args[4] if len(args) > 4 else None)
        )
    )
