"""What a step may send: the market (fees, the relayer's balance, the head and the node's
block gas limit, read in one JSON-RPC batch) and the room left for transactions in flight.

**Block gas limit.** A transaction whose gas limit is above the node's block gas limit is
refused by the node or never mined, so nothing larger is built: a batch holds at most as
many members as fit (`chain.calls.max_batch_members`), a close sent alone is capped at
the block's limit too. The limit is read with every submission (a chain may change it).

**In flight.** A burst (an expiry storm) is sent as a pipeline of consecutive nonces: a
step puts new jobs in flight while the gas limits of every live job stay within
`IN_FLIGHT_BLOCKS` blocks' gas limit. A batch's gas limit is about twice what it uses
(`executor.batching`: the allowance per member and the stipend kept back), so that is about
two and a half blocks of closes: the pool holds enough for the next two blocks even when
the step after comes late (a step waits on the node for seconds while it mines a block
over a large state). Only the front nonce is replaced for waiting (`executor.tracking`),
so the jobs queued behind it are not bumped for waiting on block space. Jobs that do not
fit stay pending, unrefused, for the next step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain import BadResponse, ChainClient
from executor.fees import Fees, fee_history_call, market_fees
from executor.settings import ExecutorSettings

IN_FLIGHT_BLOCKS = 5
# The most intents one step takes up, whatever the room (56 full batches of 256): the
# guards, the simulation and the write-ahead of a step grow with it, and nothing of a
# step is sent before all of it is written, but a step's round trips to the node cost
# the same whatever it sends, and they are most of a step while the node mines
# (BENCHMARKS.md: the 100,000-session storm, steps of 20 and of 56 batches).
MAX_INTENTS_PER_STEP = 14_336
# What the room is divided by to size a step's intake: a batch member's allowance and
# reserve (`executor.batching.BATCH_MEMBER_GAS`, `chain.calls.RESERVE_PER_MEMBER`).
GAS_PER_INTENT = 60_600


@dataclass(frozen=True, slots=True)
class Market:
    fees: Fees
    balance: int | None  # the relayer's, wei (None in dry-run: not asked)
    head: int
    block_gas_limit: int


async def read_market(
    client: ChainClient, settings: ExecutorSettings, relayer: str, *, balance: bool
) -> Market:
    """The fee market, the head block's number and gas limit, and (with `balance`) the
    relayer's balance: independent questions, one round trip. A malformed answer is asked
    again like any other bad response."""
    requests: list[tuple[str, list[Any]]] = [
        fee_history_call(settings),
        ("eth_getBlockByNumber", ["latest", False]),
    ]
    if balance:
        requests.append(("eth_getBalance", [relayer, "latest"]))

    def check(answers: list[Any]) -> None:
        _parse(answers, settings)

    return _parse(await client.batch(requests, validate=check), settings)


def _parse(answers: list[Any], settings: ExecutorSettings) -> Market:
    fees = market_fees(answers[0], settings)
    block = answers[1]
    if not isinstance(block, dict):
        raise BadResponse(f"eth_getBlockByNumber latest answered {block!r:.80}")
    head = _quantity(block.get("number"), "latest block's number")
    gas_limit = _quantity(block.get("gasLimit"), "latest block's gasLimit")
    if gas_limit <= 0:
        raise BadResponse("the latest block's gasLimit is 0")
    balance = _quantity(answers[2], "eth_getBalance") if len(answers) > 2 else None
    return Market(fees, balance, head, gas_limit)


def _quantity(value: Any, what: str) -> int:
    if not isinstance(value, str) or not value.startswith("0x") or not 3 <= len(value) <= 66:
        raise BadResponse(f"{what} is {value!r:.80}, not a hex quantity")
    try:
        return int(value, 16)
    except ValueError:
        raise BadResponse(f"{what} is {value!r:.80}, not a hex quantity") from None


def room(block_gas_limit: int, in_flight: int) -> int:
    """Gas limit still allowed in flight (may be 0 or below: nothing new this step)."""
    return IN_FLIGHT_BLOCKS * block_gas_limit - in_flight


def intake(block_gas_limit: int | None, in_flight: int) -> int:
    """How many pending intents a step takes up: what the room holds in batch members
    (all of `MAX_INTENTS_PER_STEP` before the node's limit is known), 0 when full."""
    if block_gas_limit is None:
        return MAX_INTENTS_PER_STEP
    left = room(block_gas_limit, in_flight)
    return max(0, min(MAX_INTENTS_PER_STEP, left // GAS_PER_INTENT))
