"""EIP-1559 fees: what to offer now, and what to offer when replacing a stuck transaction.

The market price comes from one `eth_feeHistory` call: the next block's base fee (the
extra last entry of `baseFeePerGas`) times a multiplier, plus a tip taken from recent
blocks' reward percentile. With the default multiplier of 2 a transaction stays
includable through six consecutive full blocks (each raises the base fee by at most 12.5%);
only `baseFee + tip` is actually paid, so the headroom costs nothing.

A replacement must raise *both* fields by the node's minimum (geth and its forks: +10%,
compared on integers) or the node refuses it as underpriced; the default bump is 13% and
rounds up. A configured cap (`max_fee_per_gas`) bounds what a replacement may offer; at
the cap the transaction waits (`replacement` answers None). A cancel is never capped: see
`replacement`. The tip is at least `min_tip` (default 1 gwei): empty blocks report a zero
reward, and a tip below what block builders accept leaves a transaction pending while the
base fee is low; chains whose builders take less (most L2s) set it lower.

Every setting is read from `ExecutorSettings`; its limits are checked where it is loaded.

Every value is an int in wei; floats never enter (a 13% bump is `ceil(x * 113 / 100)`).
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chain.client import ChainClient
from chain.errors import BadResponse
from contracts import UINT256_MAX
from executor.settings import ExecutorSettings

_HEX = frozenset(string.hexdigits)  # int(x, 16) alone would take "0x_1" and spaces
GETH_MIN_BUMP_PERCENT = 10  # txpool.pricebump default; most providers run geth's rule
HISTORY_BLOCKS = 5  # blocks of eth_feeHistory the tip is taken from


@dataclass(frozen=True)
class Fees:
    max_fee_per_gas: int
    max_priority_fee_per_gas: int

    def __post_init__(self) -> None:
        for name, value in vars(self).items():
            if type(value) is not int or not 0 <= value <= UINT256_MAX:
                raise ValueError(f"{name} must be an int of wei, not {value!r}")
        if self.max_priority_fee_per_gas > self.max_fee_per_gas:
            raise ValueError(
                f"tip {self.max_priority_fee_per_gas} above max fee {self.max_fee_per_gas}"
            )


def market_fees(history: Mapping[str, Any], settings: ExecutorSettings) -> Fees:
    """The fees to offer now, from an `eth_feeHistory` answer; `BadResponse` (naming the
    field) when the answer is malformed, so the client asks again."""
    if not isinstance(history, Mapping):
        raise BadResponse(f"eth_feeHistory answered {type(history).__name__}, not an object")
    base_fees = history.get("baseFeePerGas")
    if not isinstance(base_fees, list) or not base_fees:
        raise BadResponse(
            f"eth_feeHistory baseFeePerGas is not a non-empty list: {base_fees!r:.80}"
        )
    next_base = _quantity(base_fees[-1], "baseFeePerGas")
    for entry in base_fees[:-1]:
        _quantity(entry, "baseFeePerGas")
    if "oldestBlock" in history:
        _quantity(history["oldestBlock"], "oldestBlock")
    tips = _rewards(history.get("reward"), len(base_fees) - 1)
    paid = [t for t in tips if t > 0]  # an empty block reports 0: no evidence of a price
    tip = max(settings.min_tip, _median(paid)) if paid else settings.min_tip
    return Fees(next_base * settings.base_fee_multiplier + tip, tip)


def replacement(
    previous: Fees, market: Fees, settings: ExecutorSettings, *, capped: bool = True
) -> Fees | None:
    """The fees for a transaction replacing one sent with `previous`: each field at least
    `previous` raised by the bump (rounded up, and by 1 wei at least) and at least the
    market. With `capped`, clamped to the cap, and None when the clamped fees could not
    replace (at the cap: wait for the pending one).

    Cancels pass `capped=False`: a cancel is a 21,000-gas zero-value self-transfer, so
    even a high price costs little, while a nonce left stranded behind an unmineable
    transaction blocks every later transaction of the relayer forever."""
    fee_floor = _bumped(previous.max_fee_per_gas, settings.replacement_bump_percent)
    tip_floor = _bumped(previous.max_priority_fee_per_gas, settings.replacement_bump_percent)
    fee = max(fee_floor, market.max_fee_per_gas)
    tip = max(tip_floor, market.max_priority_fee_per_gas)
    if capped and settings.max_fee_per_gas is not None:
        fee = min(fee, settings.max_fee_per_gas)
        tip = min(tip, fee)
        if fee < fee_floor or tip < tip_floor:
            return None
    return Fees(fee, tip)


def outbid(offered: Fees, market: Fees, settings: ExecutorSettings) -> bool:
    """Whether a transaction priced `offered` is priced out of the next block: a tip below
    the market's, or a fee cap below the next base fee plus that tip. (`market` is
    `market_fees`: next base fee x `base_fee_multiplier` + tip.)"""
    tip = market.max_priority_fee_per_gas
    next_base = (market.max_fee_per_gas - tip) // max(1, settings.base_fee_multiplier)
    return offered.max_priority_fee_per_gas < tip or offered.max_fee_per_gas < next_base + tip


def exceeds_cap(fees: Fees, settings: ExecutorSettings) -> bool:
    cap = settings.max_fee_per_gas
    return cap is not None and fees.max_fee_per_gas > cap


def within_cap(fees: Fees, settings: ExecutorSettings) -> Fees:
    """`fees` lowered to the cap (the tip too, if above it); unchanged without a cap."""
    cap = settings.max_fee_per_gas
    if cap is None or fees.max_fee_per_gas <= cap:
        return fees
    return Fees(cap, min(fees.max_priority_fee_per_gas, cap))


def fee_history_call(
    settings: ExecutorSettings, history_blocks: int = HISTORY_BLOCKS
) -> tuple[str, list[Any]]:
    """The `eth_feeHistory` request `market_fees` reads (for a caller that batches it with
    its other questions)."""
    return ("eth_feeHistory", [hex(history_blocks), "latest", [settings.tip_percentile]])


async def fetch_fees(
    client: ChainClient, settings: ExecutorSettings, *, history_blocks: int = HISTORY_BLOCKS
) -> Fees:
    """Market fees from one `eth_feeHistory` call; a malformed answer is retried by the
    client like any other bad response."""
    call = fee_history_call(settings, history_blocks)
    (history,) = await client.batch([call], validate=lambda answers: _check(answers, settings))
    return market_fees(history, settings)


def _check(answers: list[Any], settings: ExecutorSettings) -> None:
    market_fees(answers[0], settings)


def _bumped(value: int, percent: int) -> int:
    return max(value + 1, -(-value * (100 + percent) // 100))


def _median(values: Sequence[int]) -> int:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def _rewards(reward: Any, blocks: int) -> list[int]:
    """One tip per block from `reward` ([[percentile value], ...]); missing or empty is no
    evidence (a node that does not track rewards), not an error."""
    if reward is None or reward == []:
        return []
    if not isinstance(reward, list) or len(reward) != blocks:
        raise BadResponse(
            f"eth_feeHistory reward must list one entry per block ({blocks}): {reward!r:.80}"
        )
    tips = []
    for entry in reward:
        if not isinstance(entry, list) or len(entry) != 1:
            raise BadResponse(f"eth_feeHistory reward entry must hold one value: {entry!r:.80}")
        tips.append(_quantity(entry[0], "reward"))
    return tips


def _quantity(value: Any, field: str) -> int:
    """A JSON-RPC quantity ("0x1a") as an exact int."""
    if (
        not isinstance(value, str)
        or not 3 <= len(value) <= 66
        or not value.startswith("0x")
        or not _HEX.issuperset(value[2:])
    ):
        raise BadResponse(f"eth_feeHistory {field} holds {value!r:.80}, not a hex quantity")
    return int(value, 16)
