"""The cyclic garbage collector's pace while a backfill allocates.

A backfill range makes a few hundred thousand container objects (the node's answer,
decoded events, rows) that stay alive until the range commits. CPython collects its
youngest generation every 700 net allocations and the whole heap whenever the objects
that survived grew by a quarter, so with several ranges in flight it walks the same
live objects again and again: a quarter of the indexing process's CPU on the benchmark
chain (BENCHMARKS.md, "Indexer backfill"), for garbage that is not there (events and
their rows hold no reference cycles; they are freed by reference counting).

- `indexing_pace()`: for one backfill round (or one batch of followed blocks), the
  youngest generation is collected every `YOUNG_THRESHOLD` allocations instead (the
  older generations keep their ratios), and the previous thresholds come back when it
  ends, however it ends. Cyclic garbage
  made meanwhile (by anything in the process) waits a little longer: memory, not
  correctness.
- `gc_paused()`: the collector off for one synchronous burst (no await inside).
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

YOUNG_THRESHOLD = 10_000  # measured: CPU per event as with the collector off (BENCHMARKS.md)


_pacing = 0  # indexing_pace() blocks open: they overlap when several indexers share a loop
_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def indexing_pace() -> Iterator[None]:
    """The young-generation threshold raised while at least one such block is open (the
    first saves the process's thresholds, the last puts them back: blocks of several
    coroutines may end in any order)."""
    global _pacing, _saved
    if _pacing == 0:
        _saved = gc.get_threshold()
        gc.set_threshold(max(_saved[0], YOUNG_THRESHOLD), *_saved[1:])
    _pacing += 1
    try:
        yield
    finally:
        _pacing -= 1
        if _pacing == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            _saved = None


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Off for the block, back on after it unless it was off before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
