"""The `chain:` section of the config: which chain, where to ask, how to follow it.

`Indexer` takes this model as it is, and `retry_policy()` is the one place the client's
retries are built from it; the app resolves nothing into another shape.
`confirmations` left out (None) means "0 on a devnet, 2 elsewhere": `WardenConfig`
decides it when the file is loaded, and the indexer refuses a model where it is still
undecided.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from chain.client import RetryPolicy
from chain.fields import Address, Int, Seconds, Section
from chain.heads import websocket_url


class ChainSettings(Section):
    rpc: list[str] = Field(default_factory=list)  # empty: devnet mode, Warden starts anvil
    chain_id: Int | None = None
    factory: Address | None = None
    start_block: Int = 0
    confirmations: Int | None = None  # None: 0 on a devnet, 2 elsewhere
    reorg_window: Int = 64
    poll_interval: Seconds = 1.0
    # Where the node offers it, a websocket `newHeads` subscription wakes the loop as soon
    # as a block is announced; polling goes on underneath (chain.heads). "auto": the first
    # RPC URL's own address (http -> ws); "off": poll only; or a ws:// / wss:// URL.
    new_heads: str = "auto"
    concurrency: Int = 4
    # Backfill ranges are sized by the logs they bring, not by blocks: the first one is
    # small (a chain's density is unknown until a range answers), then each grows toward
    # `log_target` logs and shrinks after a denser answer, between 1 and `max_log_range`
    # blocks. About `concurrency` x `log_target` logs are in memory at once.
    log_range: Int = 10
    max_log_range: Int = 50_000
    log_target: Int = 10_000
    # Backfill ranges are decoded (the part of indexing that needs no store) while the
    # range before them commits: 0 = in Warden's own process, N = in N worker processes
    # (on a machine with cores to spare; see indexer/decoding.py)
    decode_workers: Int = Field(default=0, ge=0, le=64)
    # a block's logs that contradict its header's logsBloom are asked for again this many
    # times, after log_check_backoff seconds (doubling), on the next endpoint each time
    log_check_retries: Int = Field(default=3, ge=0, le=20)
    log_check_backoff: Seconds = Field(default=0.25, ge=0.0, le=60.0)
    retry_initial: Seconds = 1.0
    retry_attempts: Int = 10
    timeout: Seconds = 30.0
    # /ready turns 503 once the node has failed (or not answered) for longer than this
    max_failure_seconds: Seconds = 60.0

    @field_validator("new_heads")
    @classmethod
    def _new_heads(cls, value: str) -> str:
        if value in ("auto", "off"):
            return value
        if value.startswith(("ws://", "wss://")) and len(value.split("://", 1)[1]) > 0:
            return value
        raise ValueError(
            'expected "auto" (the RPC address, over a websocket), "off" (poll only) or a '
            "ws:// or wss:// URL"
        )

    def heads_url(self, rpc: list[str]) -> str | None:
        """The websocket to follow new heads on, given the RPC URLs in use; None: poll."""
        if self.new_heads == "off":
            return None
        if self.new_heads == "auto":
            return websocket_url(rpc[0]) if rpc else None
        return self.new_heads

    def retry_policy(self) -> RetryPolicy:
        """The `ChainClient`'s backoff for this chain."""
        return RetryPolicy(initial=self.retry_initial, attempts=self.retry_attempts)
