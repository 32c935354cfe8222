"""JSON Schemas (OpenAPI 3.1 dialect) of every response body, by component name. The
tests validate real responses against them, so they describe what handlers return."""

from __future__ import annotations

from typing import Any

from contracts import SESSION_STATUSES
from warden.app.api.queries import INTENT_STATES


def _obj(props: dict[str, Any], *, extra: bool = False) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": list(props),
        "additionalProperties": extra,
    }


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _page(item: str) -> dict[str, Any]:
    return _obj(
        {
            "items": {"type": "array", "items": _ref(item)},
            "next_cursor": {
                "type": ["string", "null"],
                "description": "pass as `cursor` for the next page; null at the end",
            },
        }
    )


AMOUNT = {"type": "string", "pattern": "^(0|[1-9][0-9]*)$", "description": "decimal integer"}
NULL_AMOUNT = {"type": ["string", "null"], "pattern": "^(0|[1-9][0-9]*)$"}
ADDRESS = {"type": "string", "pattern": "^0x[0-9a-fA-F]{40}$"}
HASH = {"type": "string", "pattern": "^0x[0-9a-f]{64}$"}
INT = {"type": "integer"}
NULL_INT = {"type": ["integer", "null"]}
STR = {"type": "string"}
NULL_STR = {"type": ["string", "null"]}
COUNTS = {"type": "object", "additionalProperties": INT}

# fmt: off
INTENT: dict[str, Any] = {
    "id": INT, "key": STR, "wallet": ADDRESS, "rule": STR, "action": STR, "reason": STR,
    "position": INT, "block": INT, "triggered_at": INT, "rules_version": STR,
    "state": {"enum": list(INTENT_STATES)}, "detail": NULL_STR, "job_id": NULL_INT,
    "confirmed_position": NULL_INT, "created_ms": INT, "updated_ms": INT,
}

SCHEMAS: dict[str, dict[str, Any]] = {
    "Error": _obj({
        "error": {
            "type": "object",
            "properties": {
                "status": INT, "code": STR, "message": STR,
                "parameter": {"type": "string", "description": "the offending parameter"},
            },
            "required": ["status", "code", "message"],
            "additionalProperties": False,
        }
    }),
    "Health": _obj({"alive": {"const": True}}),
    "Ready": _obj({"ready": {"type": "boolean"}, "reason": NULL_STR}),
    "Status": _obj({
        "chain_head": NULL_INT, "indexed_block": NULL_INT, "safe_block": NULL_INT,
        "lag_blocks": NULL_INT, "caught_up": {"type": "boolean"},
        "relayer": _obj({"address": {"type": ["string", "null"]}, "balance": NULL_AMOUNT}),
        "rules_version": NULL_STR,
        "intents": _obj({s: INT for s in INTENT_STATES}, extra=True),
        "sessions": _obj({s: INT for s in SESSION_STATUSES}, extra=True),
    }),
    "Session": _obj({
        "wallet": ADDRESS, "owner": ADDRESS, "operator": ADDRESS, "token": ADDRESS,
        "policy": STR, "targets": {"type": "array", "items": ADDRESS}, "salt": STR,
        "fee": AMOUNT, "initial_deposit": AMOUNT, "deposit": AMOUNT, "withdrawn": AMOUNT,
        "balance": AMOUNT, "spent": AMOUNT, "budget": AMOUNT, "remaining_budget": AMOUNT,
        "stop_loss": AMOUNT, "take_profit": AMOUNT, "expiry": AMOUNT,
        "status": {"enum": list(SESSION_STATUSES)}, "close_reason": NULL_STR,
        "closed_by": {"type": ["string", "null"]}, "refund": AMOUNT, "execution_count": INT,
        "created_block": INT, "created_at": INT, "created_position": INT, "last_seq": INT,
        "last_position": INT, "last_activity": INT, "revoked_at": NULL_INT,
        "closed_at": NULL_INT, "seq_gaps": INT, "gap_note": NULL_STR,
    }),
    "Event": _obj({
        "position": INT, "block_number": INT, "block_hash": HASH, "tx_hash": HASH,
        "tx_index": INT, "log_index": INT, "timestamp": INT, "address": ADDRESS,
        "wallet": {"type": ["string", "null"]}, "name": STR, "seq": NULL_INT,
        "args": {
            "type": "object",
            "description": "decoded event arguments; integers as decimal strings",
        },
    }),
    "Intent": _obj(INTENT),
    "Job": _obj({
        "id": INT, "nonce": NULL_INT, "kind": STR, "to_address": ADDRESS, "gas": INT, "state": STR,
        "mined_hash": NULL_STR, "mined_block": NULL_INT, "receipt_status": NULL_INT,
        "gas_used": NULL_INT, "effective_gas_price": NULL_AMOUNT, "fee_paid": NULL_AMOUNT,
        "created_ms": INT, "updated_ms": INT,
    }),
    "Transaction": _obj({
        "hash": STR, "job_id": INT, "nonce": INT, "max_fee_per_gas": AMOUNT,
        "max_priority_fee_per_gas": AMOUNT, "state": STR, "error": NULL_STR,
        "created_ms": INT, "sent_ms": NULL_INT,
    }),
    "Refusal": _obj({"guard": STR, "reason": STR, "at_ms": INT}),
    "IntentDetail": _obj({
        **INTENT,
        "job": {"oneOf": [_ref("Job"), {"type": "null"}]},
        "transactions": {"type": "array", "items": _ref("Transaction")},
        "refusals": {"type": "array", "items": _ref("Refusal")},
    }),
    "SessionDetail": _obj({
        "session": _ref("Session"),
        "intents": {"type": "array", "items": _ref("IntentDetail")},
    }),
    "SessionPage": _page("Session"),
    "EventPage": _page("Event"),
    "IntentPage": _page("Intent"),
    "Stats": _obj({
        "sessions": _obj({"total": INT, **{s: INT for s in SESSION_STATUSES}}, extra=True),
        "active_sessions": INT, "volume_deposited": AMOUNT, "fees_collected": AMOUNT,
        "volume_withdrawn": AMOUNT, "volume_refunded": AMOUNT, "closed_by_reason": COUNTS,
        "stop_loss": _ref("HitRate"), "take_profit": _ref("HitRate"),
        "average_duration_seconds": NULL_INT,
    }),
    "OpenApiDocument": {"type": "object", "required": ["openapi", "info", "paths"]},
    "HitRate": _obj({
        "hits": INT, "closed_with_threshold": INT,
        "rate": {"type": ["number", "null"], "description": "hits / closed_with_threshold"},
    }),
}
# fmt: on
