"""The one catalogue of notification events: every kind, its category, its default
severity, what it means and an example of its `data`.

An event is a `NotifyEvent`: a stable `id` (the same event always carries the same id,
so consumers deduplicate on it: delivery is at-least-once), a `kind` from `KINDS`, a
severity, the session it concerns (wallet, owner, policy: what channel filters match),
the chain position that caused it (None for events no block caused, such as alerts), and
its `data` — JSON-ready, uint256 amounts as decimal strings, never numbers.

`body()` is the JSON every channel and /stream carries (docs/notify.md shows one for each
kind; `tests/notify/test_catalogue.py` checks those examples against this module).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.IntEnum):
    """Ordered: a channel's `min_severity` lets through this level and those above it."""

    INFO = 0
    WARNING = 1
    CRITICAL = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(s.label for s in cls)
            raise ValueError(f"unknown severity {text!r}: one of {names}") from None


@dataclass(frozen=True)
class Kind:
    name: str  # "session.closed"
    severity: Severity
    summary: str
    example: Mapping[str, Any]  # an example `data`

    @property
    def category(self) -> str:
        return self.name.split(".", 1)[0]


_ADDR = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
_TX = "0x" + "ab" * 32

_KINDS = (
    # -- session lifecycle: one per indexed wallet event ----------------------------------
    Kind("session.created", Severity.INFO, "a session wallet was created and funded",
         {"token": _ADDR, "operator": _ADDR, "deposit": "1000000000000000000000",
          "fee": "1000000000000000000", "budget": "500000000000000000000", "expiry": "1767225600",
          "stop_loss": "800000000000000000000", "take_profit": "0",
          "balance": "999000000000000000000"}),
    Kind("session.topped_up", Severity.INFO, "tokens came in: a deposit, or a plain transfer "
         "synced into the balance (`via`: deposit | transfer)",
         {"via": "deposit", "from": _ADDR, "amount": "250000000000000000000",
          "fee": "250000000000000000", "balance": "1248750000000000000000"}),
    Kind("session.withdrawn", Severity.INFO, "the owner withdrew",
         {"to": _ADDR, "amount": "100000000000000000000", "balance": "1148750000000000000000"}),
    Kind("session.executed", Severity.INFO, "the operator spent from the session",
         {"target": _ADDR, "selector": "0xa9059cbb", "spent": "20000000000000000000",
          "received": "0", "total_spent": "20000000000000000000",
          "balance": "1128750000000000000000"}),
    Kind("session.revoked", Severity.INFO, "the owner revoked the operator",
         {"operator": _ADDR, "balance": "1128750000000000000000"}),
    Kind("session.extended", Severity.INFO, "the expiry moved",
         {"previous_expiry": "1767225600", "expiry": "1767312000",
          "balance": "1128750000000000000000"}),
    Kind("session.closed", Severity.INFO, "the session closed and refunded its owner",
         {"reason": "stop_loss", "by": _ADDR, "refund": "1128750000000000000000",
          "balance": "0"}),
    Kind("session.swept", Severity.INFO, "an expired or revoked session was swept closed",
         {"reason": "swept", "by": _ADDR, "refund": "1128750000000000000000", "balance": "0"}),
    # -- rules and intents ----------------------------------------------------------------
    Kind("intent.fired", Severity.INFO, "a rule fired and its intent was recorded",
         {"intent": "0x…:stop-loss:812", "rule": "stop-loss", "action": "close",
          "reason": "stop_loss"}),
    Kind("intent.submitted", Severity.INFO, "the intent's transaction was sent",
         {"intent": "0x…:stop-loss:812", "rule": "stop-loss", "tx_hash": _TX, "nonce": 41}),
    Kind("intent.confirmed", Severity.INFO, "the event the intent caused is indexed",
         {"intent": "0x…:stop-loss:812", "rule": "stop-loss", "tx_hash": _TX}),
    Kind("intent.failed", Severity.WARNING, "the intent will not be carried out",
         {"intent": "0x…:stop-loss:812", "rule": "stop-loss",
          "reason": "reverted: SessionClosed()"}),
    Kind("intent.obsolete", Severity.INFO, "the intent was overtaken (the session closed "
         "otherwise, or a reorg removed it)",
         {"intent": "0x…:stop-loss:812", "rule": "stop-loss", "reason": "closed by owner"}),
    Kind("rule.notify", Severity.INFO, "an alert-only rule (`action: notify`) fired",
         {"rule": "large-balance", "message": "session 0x… holds 1200 USDC"}),
    # -- operator alerts: `state` raised | cleared, the same severity both ways -----------
    Kind("alert.relayer_balance_low", Severity.CRITICAL, "the relayer's balance is below "
         "executor.min_relayer_balance", {"state": "raised", "balance": "1200000000000000",
                                         "minimum": "10000000000000000"}),
    Kind("alert.balance_drift", Severity.WARNING, "the balance audit found an open session "
         "whose indexed balance differs from its token's `balanceOf` at the indexed block "
         "(one alert per wallet; `on_chain` is null and `problem` says why when the token's "
         "answer cannot be read); cleared when a later pass finds it in line or closed",
         {"state": "raised", "wallet": "0x8464135c8F25Da09e49BC8782676a84730C318bC",
          "token": _ADDR, "block": 812, "indexed": "999000000000000000000",
          "on_chain": "1041000000000000000000", "difference": "42000000000000000000",
          "problem": None}),
    Kind("alert.tx_unmined", Severity.WARNING, "a sent transaction (its nonce) stayed "
         "unmined for notify.unmined_alert_blocks", {"state": "raised", "tx_hash": _TX,
                                                     "blocks": 24, "stuck": 1,
                                                     "threshold": 20}),
    Kind("alert.indexing_lag", Severity.WARNING, "the index is further behind the head than "
         "notify.lag_alert_blocks", {"state": "raised", "lag_blocks": 120, "threshold": 50}),
    Kind("alert.node_inconsistent", Severity.CRITICAL, "the node contradicted itself (logs "
         "against its bloom, a forgotten transaction)", {"state": "raised",
                                                         "detail": "bloom mismatch at 812"}),
    Kind("alert.resend_loop", Severity.CRITICAL, "a loop that spends gas was broken "
         "(an intent mined without its effect, isolated batch member)",
         {"state": "raised", "detail": "intent … mined 3 times without its event"}),
    Kind("alert.rules_reload_failed", Severity.WARNING, "a rules reload was refused; the old "
         "rules keep running", {"state": "raised", "problems": 2, "version": "rules-3f2a"}),
    Kind("alert.leadership_changed", Severity.WARNING, "another replica leads now",
         {"state": "raised", "leader": "host-b", "epoch": 7}),
    Kind("alert.circuit_breaker", Severity.CRITICAL, "the relayer's gas budget circuit breaker "
         "tripped: sending paused", {"state": "raised", "detail": "gas budget per hour spent"}),
    # -- about events ---------------------------------------------------------------------
    Kind("event.retracted", Severity.INFO, "a reorg removed the block that caused an earlier "
         "event: treat that event as undone",
         {"retracts": "session.closed:3487513739267:0x1a2b3c4d", "kind": "session.closed",
          "position": "3487513739267"}),
    Kind("notify.test", Severity.INFO, "a test event (`warden notify test CHANNEL`)",
         {"message": "test event from Warden", "channel": "ops-hook"}),
)  # fmt: skip

KINDS: dict[str, Kind] = {k.name: k for k in _KINDS}
CATEGORIES = ("session", "intent", "rule", "alert", "event", "notify")


def kind(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown event kind {name!r}") from None


def matches_kind(pattern: str, name: str) -> bool:
    """A filter names a kind exactly, a category (`session`, `alert`), or `*`."""
    return pattern in ("*", name) or name.split(".", 1)[0] == pattern


def known_pattern(pattern: str) -> bool:
    return pattern == "*" or pattern in KINDS or pattern in CATEGORIES


@dataclass(frozen=True)
class NotifyEvent:
    id: str  # stable: consumers key on it
    kind: str
    severity: Severity
    at_ms: int  # wall clock when Warden recorded it
    data: Mapping[str, Any]
    wallet: str | None = None
    owner: str | None = None
    policy: str | None = None
    position: int | None = None  # block << 32 | logIndex of the cause, when a block caused it
    chain: Mapping[str, Any] | None = field(default=None)  # block, hash, tx, timestamp

    def body(self, cursor: int | None = None) -> dict[str, Any]:
        """The JSON document channels and /stream send; `cursor` is the log's."""
        out: dict[str, Any] = {
            "id": self.id,
            "kind": self.kind,
            "severity": self.severity.label,
            "at_ms": self.at_ms,
        }
        if cursor is not None:
            out["cursor"] = str(cursor)
        if self.wallet is not None:
            out["session"] = {"wallet": self.wallet, "owner": self.owner, "policy": self.policy}
        if self.chain is not None:
            out["chain"] = dict(self.chain)
        out["data"] = dict(self.data)
        return out
