"""The bottom layer: everything Warden knows about talking to an EVM node.

A transport seam (HTTP, or an in-process mock for tests), the JSON-RPC client with
retries and endpoint failover, the error tree (`chain.errors`), the factory's and the
wallets' event decoder, the calls the relayer makes and the decoding of their reverts,
and exact units. It imports no other Warden package but `contracts` (the ABIs and the
contracts' vocabulary); `indexer`, `executor` and `warden` build on it.

    async with ChainClient([url], chain_id=1) as client:
        head = await client.block_number()
"""

from chain.abi import (
    EventSpec,
    MalformedLog,
    block_of,
    checksum,
    event_specs,
    position,
    topics_filter,
)
from chain.bloom import MalformedBloom, log_in_bloom, logs_bloom, may_contain, parse_bloom
from chain.calls import Call, check_call
from chain.client import ChainClient, RetryPolicy, RpcStats
from chain.errors import (
    BadResponse,
    CallReverted,
    ChainError,
    FatalError,
    LogRangeTooLarge,
    ProviderError,
    RateLimited,
    RetryableError,
    RpcRejected,
    RpcUnavailable,
    TxRejected,
    UnknownBlock,
    WrongChain,
)
from chain.heads import HeadStats, HeadWatcher, websocket_url
from chain.reverts import Revert, decode_revert
from chain.transport import (
    HttpTransport,
    MockTransport,
    Request,
    Response,
    RpcFault,
    Transport,
    rpc_response,
)

__all__ = [
    "BadResponse",
    "Call",
    "CallReverted",
    "ChainClient",
    "ChainError",
    "EventSpec",
    "FatalError",
    "HeadStats",
    "HeadWatcher",
    "HttpTransport",
    "LogRangeTooLarge",
    "MalformedBloom",
    "MalformedLog",
    "MockTransport",
    "ProviderError",
    "RateLimited",
    "Request",
    "Response",
    "RetryPolicy",
    "RetryableError",
    "Revert",
    "RpcFault",
    "RpcRejected",
    "RpcStats",
    "RpcUnavailable",
    "Transport",
    "TxRejected",
    "UnknownBlock",
    "WrongChain",
    "block_of",
    "check_call",
    "checksum",
    "decode_revert",
    "event_specs",
    "log_in_bloom",
    "logs_bloom",
    "may_contain",
    "parse_bloom",
    "position",
    "rpc_response",
    "topics_filter",
    "websocket_url",
]
