"""One sender, one nonce sequence.

The next nonce is the larger of the chain's pending count (which includes our
transactions already in the node's pool) and one past the highest nonce a live job holds
(the node may have forgotten our pool transactions: a restart, an eviction; the executor
re-broadcasts them from the outbox). The outbox keeps the counter too, written with each
job; a stored counter ahead of both means the node lost nonces we never re-broadcast,
which is logged rather than trusted, since trusting it would leave a gap that strands
every later transaction.

Any "nonce too low/high" from the node makes the manager resync before the next
allocation.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from chain import ChainClient

log = logging.getLogger("warden.executor")


class NonceManager:
    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = address
        self._next: int | None = None

    @property
    def synced(self) -> bool:
        return self._next is not None

    async def sync(self, live_nonces: Iterable[int], stored: int | None) -> int:
        answer = await self.client.call("eth_getTransactionCount", self.address, "pending")
        pending = int(answer, 16)
        live = list(live_nonces)
        nxt = max(pending, max(live) + 1 if live else 0)
        if stored is not None and stored > nxt:
            log.warning(
                "outbox counter says next nonce %d, the node says %d: using %d (the node "
                "dropped transactions the outbox no longer tracks)",
                stored,
                pending,
                nxt,
            )
        self._next = nxt
        return nxt

    async def mined_count(self) -> int:
        """Transactions of the sender in the latest block: every nonce below is used."""
        return int(await self.client.call("eth_getTransactionCount", self.address, "latest"), 16)

    async def pending_count(self) -> int:
        """Transactions of the sender the node knows, mined or waiting in its pool."""
        return int(await self.client.call("eth_getTransactionCount", self.address, "pending"), 16)

    def allocate(self) -> int:
        if self._next is None:
            raise RuntimeError("NonceManager.allocate before sync")
        nonce = self._next
        self._next += 1
        return nonce

    def invalidate(self) -> None:
        """The node disagreed with us: resync before the next allocation."""
        self._next = None
