"""What the daemon serves, known only when it starts (`Target`), and the token decimals
the rules compare amounts with (`TokenDecimals`, shared with the API's console)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chain import ChainClient
from executor import Signer

log = logging.getLogger("warden.daemon")

DECIMALS = "0x313ce567"  # decimals()


@dataclass(frozen=True)
class Target:
    """What the daemon serves, known only when it starts: the configured chain, or the
    devnet Warden started (its URL, contracts and operator), and the relayer's key."""

    rpc: tuple[str, ...]
    factory: str
    chain_id: int
    signer: Signer | None  # None in dry-run
    relayer: str | None  # the address to preflight as without a signer


class TokenDecimals:
    """Each token's `decimals()`, asked once; the rules compare token units with it."""

    def __init__(self, client: ChainClient, fixed: int | None = None) -> None:
        self.client = client
        self.fixed = fixed
        self.known: dict[str, int] = {}

    async def __call__(self, tokens: Sequence[str]) -> dict[str, int]:
        if self.fixed is not None:
            self.known.update(dict.fromkeys(tokens, self.fixed))  # the API shows what is used
            return dict.fromkeys(tokens, self.fixed)
        unknown = [t for t in tokens if t not in self.known]
        if unknown:
            answers = await self.client.batch_each(
                [("eth_call", [{"to": t, "data": DECIMALS}, "latest"]) for t in unknown]
            )
            for token, answer in zip(unknown, answers, strict=True):
                value = _uint(answer)
                if value is None or value > 77:
                    log.warning("token %s gives no usable decimals() (%r); using 18", token, answer)
                    value = 18
                self.known[token] = value
        return {t: self.known[t] for t in tokens}


def _uint(answer: Any) -> int | None:
    if not isinstance(answer, str) or not answer.startswith("0x") or len(answer) != 66:
        return None
    try:
        return int(answer, 16)
    except ValueError:
        return None
