"""The response bodies as pydantic models: handlers answer with these, and the OpenAPI
document's schemas are generated from them (`openapi.py`), so what is documented is what
is sent.

Rows from the readers (`indexer.reads`, `executor.history`) are validated into these
models attribute by attribute. Amounts (uint256) are exact ints inside and decimal
strings on the wire, never numbers: `Amount` serializes with `str` and documents itself
as a string of digits.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema, field_serializer

from contracts import SESSION_STATUSES
from executor.history import IntentHistory
from indexer.reads import SessionTotals
from warden.app.api.params import INTENT_STATES

Amount = Annotated[
    int,
    Field(ge=0),
    PlainSerializer(str, return_type=str),
    WithJsonSchema({"type": "string", "pattern": "^[0-9]+$", "description": "decimal integer"}),
]
Address = Annotated[str, WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"})]
Hash = Annotated[str, WithJsonSchema({"type": "string", "pattern": "^0x[0-9a-f]{64}$"})]


def _counts(keys: tuple[str, ...], *, first: tuple[str, ...] = ()) -> WithJsonSchema:
    """Counts by key, every one of `keys` present; other keys allowed (counts too)."""
    names = [*first, *keys]
    return WithJsonSchema({
        "type": "object",
        "properties": {k: {"type": "integer"} for k in names},
        "required": names,
        "additionalProperties": {"type": "integer"},
    })  # fmt: skip


def _enum(values: tuple[str, ...]) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "enum": list(values)})


IntentCounts = Annotated[dict[str, int], _counts(INTENT_STATES)]
SessionCounts = Annotated[dict[str, int], _counts(SESSION_STATUSES)]


class Body(BaseModel):
    """Base of every response body: exactly these fields, each always present."""

    model_config = ConfigDict(
        extra="forbid", from_attributes=True, json_schema_serialization_defaults_required=True
    )


class ErrorDetail(Body):
    status: int
    code: str
    message: str
    parameter: str | None = Field(None, description="the offending parameter (400 only)")

    model_config = ConfigDict(json_schema_serialization_defaults_required=False)


class Error(Body):
    error: ErrorDetail


class Health(Body):
    alive: Literal[True]


class Ready(Body):
    ready: bool
    reason: str | None


class Relayer(Body):
    address: str | None
    balance: Amount | None


class Alert(Body):
    kind: str  # no_effect, gas_budget, node_inconsistent, relayer_balance, isolated, close_failed
    message: str
    at_ms: int


class Protection(Body):
    """The relayer's protection (docs/executor.md): the gas budget's circuit breaker, a
    sender paused by an inconsistent node, and the latest alerts (newest last)."""

    circuit_breaker_open: bool
    gas_budget_per_hour: int
    gas_in_window: int  # used in the last hour plus the limits of jobs in flight
    gas_spent_total: int  # since the daemon started
    sending_paused: str | None  # why, when the node is inconsistent
    alerts: list[Alert]

    @classmethod
    def of(cls, p: Any) -> Protection | None:
        if p is None:
            return None
        return cls(
            circuit_breaker_open=p.breaker_open, gas_budget_per_hour=p.gas_budget,
            gas_in_window=p.gas_in_window, gas_spent_total=p.gas_spent_total,
            sending_paused=p.node_fault, alerts=[Alert.model_validate(a) for a in p.alerts],
        )  # fmt: skip


class Leadership(Body):
    role: Literal["leader", "standby"]
    epoch: int | None  # the fencing epoch this replica leads at; None: standby, or SQLite
    identity: str  # how this replica is named in the lease
    leader: str | None  # who leads, as this replica last saw it
    takeovers: int  # times this replica took the lease
    shared: bool  # replicas share the database (PostgreSQL); False: one process (SQLite)

    @classmethod
    def of(cls, lead: Any) -> Leadership | None:
        if lead is None:
            return None
        return cls(
            role=lead.role, epoch=lead.epoch, identity=lead.identity,
            leader=lead.identity if lead.role == "leader" else lead.leader_seen,
            takeovers=lead.takeovers, shared=not lead.solo,
        )  # fmt: skip


class Status(Body):
    chain_head: int | None
    indexed_block: int | None
    safe_block: int | None
    lag_blocks: int | None
    caught_up: bool
    relayer: Relayer
    rules_version: str | None
    intents: IntentCounts
    sessions: SessionCounts
    protection: Protection | None  # None before the executor's first step, and in dry-run
    leadership: Leadership | None  # None until the daemon opened its database
    token_decimals: dict[str, int] = Field(
        description="decimals() of each token the rules have read so far (token address → "
        "decimals); a client formats that token's amounts with it"
    )


class Session(Body):
    wallet: Address
    owner: Address
    operator: Address
    token: Address
    policy: str
    targets: list[Address]
    salt: str
    fee: Amount = Field(
        description="every fee paid: the creation's (with a prefunded balance), top-ups', "
        "and those of plain transfers the wallet found (contracts v2)"
    )
    initial_deposit: Amount
    deposit: Amount
    withdrawn: Amount
    balance: Amount
    spent: Amount
    budget: Amount
    stop_loss: Amount
    take_profit: Amount
    expiry: Amount
    status: Annotated[str, _enum(SESSION_STATUSES)]
    close_reason: str | None
    closed_by: str | None
    refund: Amount
    execution_count: int
    created_block: int
    created_at: int
    created_position: int
    last_seq: int
    last_position: int
    last_activity: int
    revoked_at: int | None
    closed_at: int | None
    seq_gaps: int
    gap_note: str | None
    remaining_budget: Amount


class Event(Body):
    position: int
    block_number: int
    block_hash: Hash
    tx_hash: Hash
    tx_index: int
    log_index: int
    timestamp: int
    address: Address
    wallet: str | None
    name: str
    seq: int | None
    args: dict[str, Any] = Field(description="decoded event arguments; integers as decimal strings")

    @field_serializer("args")
    def _args(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            k: str(v) if isinstance(v, int) and not isinstance(v, bool) else v
            for k, v in args.items()
        }


class Intent(Body):
    id: int
    key: str
    wallet: Address
    rule: str
    action: str
    reason: str
    position: int
    triggered_at: int
    rules_version: str
    state: Annotated[str, _enum(INTENT_STATES)]
    detail: str | None
    job_id: int | None
    confirmed_position: int | None
    created_ms: int
    updated_ms: int
    block: int


class Job(Body):
    id: int
    nonce: int | None
    kind: str
    to_address: Address
    gas: int
    state: str
    mined_hash: str | None
    mined_block: int | None
    receipt_status: int | None
    gas_used: int | None
    effective_gas_price: Amount | None
    created_ms: int
    updated_ms: int
    fee_paid: Amount | None


class Transaction(Body):
    hash: str
    job_id: int
    nonce: int
    max_fee_per_gas: Amount
    max_priority_fee_per_gas: Amount
    state: str
    error: str | None
    created_ms: int
    sent_ms: int | None


class Refusal(Body):
    guard: str
    reason: str
    at_ms: int


class IntentDetail(Intent):
    job: Job | None
    transactions: list[Transaction]
    refusals: list[Refusal]

    @classmethod
    def of(cls, h: IntentHistory) -> IntentDetail:
        return cls(
            **dict(Intent.model_validate(h.intent)),
            job=None if h.job is None else Job.model_validate(h.job),
            transactions=[Transaction.model_validate(t) for t in h.transactions],
            refusals=[Refusal.model_validate(r) for r in h.refusals],
        )


class SessionDetail(Body):
    session: Session
    intents: list[IntentDetail]


_NEXT = "pass as `cursor` for the next page; null at the end"


class SessionPage(Body):
    items: list[Session]
    next_cursor: str | None = Field(description=_NEXT)


class EventPage(Body):
    items: list[Event]
    next_cursor: str | None = Field(description=_NEXT)


class IntentPage(Body):
    items: list[Intent]
    next_cursor: str | None = Field(description=_NEXT)


class Close(Body):
    closed_at: int = Field(description="chain time, unix seconds")
    reason: str
    wallet: Address


class Reaction(Body):
    intent_id: int
    wallet: Address
    rule: str
    created_ms: int = Field(description="when the intent was stored, unix ms")
    sent_ms: int = Field(description="when its first transaction was sent, unix ms")
    latency_ms: int = Field(description="sent_ms - created_ms: the reaction time")


class Activity(Body):
    """The latest closes and reactions, oldest first: what the console's chart plots."""

    closes: list[Close]
    reactions: list[Reaction]


class Notification(Body):
    """One delivery of one event to one channel (the notification outbox's row)."""

    id: int
    channel: str
    state: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_ms: int = Field(description="when a pending delivery is tried next")
    last_error: str | None = Field(description="the last failed attempt's answer")
    created_ms: int
    updated_ms: int
    delivered_ms: int | None
    event_cursor: str = Field(description="the event's cursor in the log (/stream's id)")
    event_id: str = Field(description="the event's stable id")
    kind: str
    wallet: Address | None


class NotificationPage(Body):
    items: list[Notification]
    next_cursor: str | None = Field(description=_NEXT)


class HitRate(Body):
    hits: int
    closed_with_threshold: int
    # A ratio of counts, not an amount: a rounded number is what a dashboard wants.
    rate: float | None = Field(description="hits / closed_with_threshold")

    @classmethod
    def of(cls, hits: int, eligible: int) -> HitRate:
        rate = round(hits / eligible, 4) if eligible else None
        return cls(hits=hits, closed_with_threshold=eligible, rate=rate)


class Stats(Body):
    sessions: Annotated[dict[str, int], _counts(SESSION_STATUSES, first=("total",))]
    active_sessions: int
    volume_deposited: Amount
    fees_collected: Amount
    volume_withdrawn: Amount
    volume_refunded: Amount
    closed_by_reason: dict[str, int]
    stop_loss: HitRate
    take_profit: HitRate
    average_duration_seconds: int | None

    @classmethod
    def of(cls, t: SessionTotals) -> Stats:
        return cls(
            sessions={"total": sum(t.by_status.values()), **t.by_status},
            active_sessions=t.by_status["active"],
            volume_deposited=t.deposited,
            fees_collected=t.fees,
            volume_withdrawn=t.withdrawn,
            volume_refunded=t.refunded,
            closed_by_reason=t.closed_by_reason,
            stop_loss=HitRate.of(t.stop_loss_hits, t.stop_loss_eligible),
            take_profit=HitRate.of(t.take_profit_hits, t.take_profit_eligible),
            average_duration_seconds=t.average_duration,
        )


class OpenApiDocument(Body):
    """The document itself (served as built; this model only documents its outline)."""

    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


# Every component of the document, in the order it lists them.
COMPONENTS: tuple[type[Body], ...] = (
    Error, Health, Ready, Status, Session, Event, Intent, Job, Transaction, Refusal,
    IntentDetail, SessionDetail, SessionPage, EventPage, IntentPage, Stats, HitRate,
    Close, Reaction, Activity, Notification, NotificationPage,
    OpenApiDocument,
)  # fmt: skip
