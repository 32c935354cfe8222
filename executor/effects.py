"""What a mined transaction of ours was meant to do, read back from its signed bytes.

A receipt with status 1 says the transaction ran, not that it closed anything: a wallet
whose code a node lost, or a hostile member of a batch, may accept `close` and emit
nothing. The tracker compares the wallets a transaction *called* (decoded from the raw
transaction stored before it was sent: the mined one may be an earlier attempt of its job
than the job's current call) with those its receipt shows `Closed` for. A wallet called
but not closed is a close *mined without effect*, counted per intent against
`max_mined_without_effect`; an intent the mined transaction did not call at all (its
job became a cancel, or a batch was rewritten without it) is only requeued.
"""

from __future__ import annotations

from eth_abi.abi import decode
from eth_account.typed_transactions.typed_transaction import TypedTransaction
from hexbytes import HexBytes

from chain.calls import CLOSE, CLOSE_BATCH, SWEEP
from executor.schema import NO_EFFECT_DETAIL


def called_wallets(raw: str) -> frozenset[str]:
    """The wallets (lowercase) a signed transaction calls close or sweep on."""
    fields = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
    to = "0x" + bytes(fields["to"]).hex()
    data = bytes(fields["data"])
    selector = data[:4]
    if selector in (CLOSE, SWEEP):
        return frozenset({to.lower()})
    if selector == CLOSE_BATCH:
        wallets, _, _ = decode(["address[]", "uint8[]", "uint256"], data[4:])
        return frozenset(str(w).lower() for w in wallets)
    return frozenset()


def no_effect_detail(tx_hash: str, misses: int, limit: int) -> str:
    return (
        f"{NO_EFFECT_DETAIL}: {misses} of our transactions (limit "
        f"max_mined_without_effect {limit}, the last {tx_hash}) ran with status 1 and "
        "closed nothing; not tried again until the session moves on chain"
    )
