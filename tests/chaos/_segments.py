"""A node that outlives anvil's own limits: an anvil behind a `NodeProxy`, replaced on
`renew()` by a fresh anvil loaded from the old one's state dump, and on `fall_back()` (after
it broke) by one loaded from the last `save()`.

Why: anvil 1.7.1 breaks after roughly 80 to 135 `anvil_reorg` calls in one process
("Resource not found" from `anvil_reorg`, or a state that contradicts its own blocks; see
BENCHMARKS.md, "Chaos"). A fresh process loaded from a dump has none of that history.

What a renewal keeps: every block, transaction, receipt and log (same hashes) and the head
state. What it does not keep: the states of earlier blocks, so the new node can reorg only
blocks it mined itself (`anvil_reorg` below the load point answers "Required data
unavailable"); `renew` returns the head it loaded, the new floor for reorgs. (anvil can
dump and load historical states too, `anvil_dumpState(true)`, but a node loaded with them
lost the code of every session wallet at its first reorg below the load point: a probe
found 8 of 8 wallets codeless after one such reorg.) What it adds: chain time is set to
the head's timestamp + 1 (anvil's `evm_increaseTime` offset is not part of a dump; without
this the next block would be hours or days older than its parent).

Seen from a client (the daemon, the test's own web3): one URL throughout, the proxy's. The
daemon keeps running across a renewal, like a daemon whose provider restarts the node
behind a stable endpoint from a snapshot. Renew only when nothing is in flight (the reorg
scenario does it after a round settled): anvil does not dump its transaction pool.
"""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path
from typing import Any

from tests.chaos._node_proxy import NodeProxy
from warden.devnet import Anvil, DevnetError


class NodeFault(RuntimeError):
    """The node itself misbehaved (an error from a call that must work, or a renewed node
    that does not serve the chain it was loaded with): not Warden's failure."""


class SegmentedNode(Anvil):
    """An `Anvil` as far as callers can tell (`url`, `rpc`, context manager), whose process
    is replaced by `renew()`. `url` is the proxy's and never changes."""

    def __init__(self, work: Path, *, seed: int = 0) -> None:
        super().__init__(start_timeout=120.0, stop_timeout=30.0)
        self.work = work
        self.current: Anvil | None = None
        self.proxy: NodeProxy | None = None
        self.seed = seed
        self.renewals = 0
        self.fallbacks = 0
        self.renew_seconds: list[float] = []
        self.saved: tuple[Path, dict[str, Any]] | None = None  # the dump and its head

    @property
    def url(self) -> str:
        if self.proxy is None:
            raise DevnetError("the segmented node is not running")
        return self.proxy.url

    def start(self, timeout: float | None = None) -> SegmentedNode:
        self.current = Anvil(start_timeout=self.start_timeout).start()
        self.proxy = NodeProxy(self.current.url, seed=self.seed).start()
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.proxy = None
        if self.current is not None:
            self.current.stop()
            self.current = None

    def rpc(self, method: str, *params: Any) -> Any:
        if self.current is None:
            raise DevnetError("the segmented node is not running")
        return self.current.rpc(method, *params)

    def save(self) -> int:
        """Dump the current anvil's state (kept as the state `fall_back` returns to); the
        head's number. Only when nothing is pooled: anvil does not dump its pool. Raises
        NodeFault."""
        node = self.current
        assert node is not None, "not running"
        head = node.rpc("eth_getBlockByNumber", "latest", False)
        number = int(head["number"], 16)
        pending = node.rpc("txpool_status")
        if int(pending["pending"], 16) or int(pending["queued"], 16):
            raise NodeFault(f"a save at block {number} with transactions pooled: {pending}")
        try:
            dump = node.rpc("anvil_dumpState")
        except DevnetError as exc:
            raise NodeFault(f"anvil_dumpState failed at block {number}: {exc}") from exc
        state = json.loads(gzip.decompress(bytes.fromhex(dump.removeprefix("0x"))))
        path = self.work / "node-saved.json"
        path.write_text(json.dumps(state))
        self.saved = (path, head)
        return number

    def renew(self) -> int:
        """Save the current anvil, start a fresh one from the save, check it serves the
        same head, point the proxy at it, stop the old one; the head's number (reorgs on
        the new node must stay above it). Raises NodeFault."""
        began = time.monotonic()
        self.save()
        number = self._restart()
        self.renewals += 1
        self.renew_seconds.append(time.monotonic() - began)
        return number

    def fall_back(self) -> int:
        """Replace a node that broke (it serves a head but not the blocks under it) by a
        fresh one loaded from the last save: to a client, a reorg back to the saved head
        (whatever it saw above it is replaced by what is mined next). The saved head's
        number, the new floor for reorgs. Raises NodeFault."""
        if self.saved is None:
            raise NodeFault("no saved state to fall back to")
        self.fallbacks += 1
        return self._restart()

    def _restart(self) -> int:
        old, proxy = self.current, self.proxy
        assert old is not None and proxy is not None and self.saved is not None
        path, head = self.saved
        number = int(head["number"], 16)
        fresh = Anvil(extra_args=["--load-state", str(path)], start_timeout=self.start_timeout)
        fresh.start()
        try:
            again = fresh.rpc("eth_getBlockByNumber", "latest", False)
            if again is None or again["hash"] != head["hash"]:
                raise NodeFault(
                    f"the node loaded from the dump at block {number} serves head "
                    f"{again and again['number']} {again and again['hash']}, not {head['hash']}"
                )
            fresh.rpc("evm_setTime", int(head["timestamp"], 16) + 1)
        except BaseException:
            fresh.stop()
            raise
        proxy.switch(fresh.url)
        self.current = fresh
        old.stop()
        return number
