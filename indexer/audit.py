"""Balance audit: indexed balances against the token's `balanceOf`, at the same block.

A plain token transfer into a wallet moves its real balance without an event; the
indexed balance catches up at the wallet's next event (every event carries
`balanceAfter`) or when anyone calls the permissionless `sync()`. This audit finds such
drift (and anything worse) for the sessions still open, so the daemon can report it and
ask for a `sync()`.
"""

from __future__ import annotations

from dataclasses import dataclass

from eth_utils.crypto import keccak

from chain.client import ChainClient
from indexer.projection import Session

_BALANCE_OF = keccak(text="balanceOf(address)")[:4].hex()


@dataclass(frozen=True)
class Drift:
    wallet: str
    token: str
    indexed: int
    on_chain: int

    @property
    def difference(self) -> int:
        return self.on_chain - self.indexed


async def audit_balances(
    client: ChainClient, sessions: list[Session], block: int, chunk: int = 200
) -> list[Drift]:
    """Sessions (not closed) whose token balance at `block` differs from the index."""
    open_sessions = [s for s in sessions if s.status != "closed"]
    drifts: list[Drift] = []
    for i in range(0, len(open_sessions), chunk):
        part = open_sessions[i : i + chunk]
        calls = [
            (
                "eth_call",
                [{"to": s.token, "data": "0x" + _BALANCE_OF + s.wallet[2:].lower().rjust(64, "0")},
                 hex(block)],
            )
            for s in part
        ]  # fmt: skip
        for session, answer in zip(part, await client.batch(calls), strict=True):
            on_chain = int(answer, 16) if answer not in (None, "0x") else 0
            if on_chain != session.balance:
                drifts.append(Drift(session.wallet, session.token, session.balance, on_chain))
    return drifts
