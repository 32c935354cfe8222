"""What each channel type sends for one event (pure): the generic webhook's JSON (the
event document itself), and a readable one-line message with links for Slack and
Discord incoming webhooks.

- Slack (api.slack.com/messaging/webhooks, "Formatting text"): `{"text": …}` in mrkdwn;
  `&`, `<` and `>` are escaped as `&amp;`, `&lt;`, `&gt;` (Slack's only control
  characters), links are `<url|label>`; at most 40,000 characters (we cut at 3,000).
- Discord (discord.com/developers/docs/resources/webhook, "Execute Webhook"):
  `{"content": …, "allowed_mentions": {"parse": []}}` — content at most 2,000
  characters, links `[label](<url>)` (angle brackets: no embed preview), markdown
  characters escaped, and no mention can ping anyone whatever a policy name holds.

Amounts are shown exactly, in token base units (the notification carries no decimals).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

SLACK_MAX = 3000
DISCORD_MAX = 2000


def _short(address: str | None) -> str:
    if not address:
        return "?"
    return f"{address[:6]}…{address[-4:]}" if len(address) == 42 else address


def _get(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    return "?" if value is None else str(value)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def summary(body: Mapping[str, Any]) -> str:
    """One line saying what happened, e.g. `session 0x8464…18bC closed (stop_loss),
    refund 1128750000000000000000` (a line break in a policy name or a message is a
    space: one event, one line)."""
    return _CONTROL.sub(" ", _summary(body))


def _summary(body: Mapping[str, Any]) -> str:
    kind = str(body.get("kind", "?"))
    data: Mapping[str, Any] = body.get("data") or {}
    session: Mapping[str, Any] = body.get("session") or {}
    who = f"session {_short(session.get('wallet'))}"
    policy = f" [{session.get('policy')}]" if session.get("policy") else ""

    def d(key: str) -> str:
        return _get(data, key)

    texts = {
        "session.created": f"{who}{policy} created: deposit {d('deposit')}, "
        f"budget {d('budget')}, expiry {d('expiry')}",
        "session.topped_up": f"{who}{policy} topped up by {d('amount')} ({d('via')}), "
        f"balance {d('balance')}",
        "session.withdrawn": f"{who}{policy} withdrew {d('amount')}, balance {d('balance')}",
        "session.executed": f"{who}{policy} operator spent {d('spent')} at "
        f"{_short(data.get('target'))}, balance {d('balance')}",
        "session.revoked": f"{who}{policy} revoked by its owner",
        "session.extended": f"{who}{policy} extended to {d('expiry')}",
        "session.closed": f"{who}{policy} closed ({d('reason')}), refund {d('refund')}",
        "session.swept": f"{who}{policy} swept, refund {d('refund')}",
        "intent.fired": f"rule {d('rule')} fired for {who}: {d('action')} ({d('reason')})",
        "intent.submitted": f"{d('rule')} for {who}: transaction {_short(data.get('tx_hash'))} "
        "sent",
        "intent.confirmed": f"{d('rule')} for {who}: confirmed",
        "intent.failed": f"{d('rule')} for {who} FAILED: {d('reason')}",
        "intent.obsolete": f"{d('rule')} for {who}: obsolete ({d('reason')})",
        "rule.notify": f"rule {d('rule')}: {d('message')}",
        "event.retracted": f"RETRACTED {d('kind')} ({d('retracts')}): its block left the chain",
        "notify.test": f"test event: {d('message')}",
    }
    if kind in texts:
        return texts[kind]
    if kind == "alert.balance_drift":
        state = "CLEARED" if data.get("state") == "cleared" else "ALERT"
        found = (
            f"on chain {d('on_chain')} (difference {d('difference')})"
            if data.get("on_chain") is not None
            else f"unreadable: {d('problem')}"
        )
        if data.get("state") == "cleared":
            found = f"{d('reason')}"
        return (
            f"{state} balance drift: {who}{policy} token {_short(data.get('token'))} "
            f"indexed {d('indexed')}, {found} at block {d('block')}"
        )
    if kind.startswith("alert."):
        state = "CLEARED" if data.get("state") == "cleared" else "ALERT"
        details = ", ".join(f"{k} {v}" for k, v in data.items() if k != "state")
        return f"{state} {kind.removeprefix('alert.')}" + (f": {details}" if details else "")
    return kind


def _link(body: Mapping[str, Any], console_url: str) -> tuple[str, str] | None:
    session = body.get("session") or {}
    wallet = session.get("wallet")
    base = console_url.rstrip("/")
    if wallet:
        return f"{base}/sessions/{wallet}", "session"
    return f"{base}/status", "status"


def _severity(body: Mapping[str, Any]) -> str:
    return {"warning": "⚠️ ", "critical": "🚨 "}.get(str(body.get("severity")), "")


_SLACK_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def slack_escape(text: str) -> str:
    return re.sub(r"[&<>]", lambda m: _SLACK_ESCAPES[m.group()], text)


def slack_body(body: Mapping[str, Any], console_url: str) -> dict[str, Any]:
    text = _severity(body) + slack_escape(summary(body))
    link = _link(body, console_url)
    suffix = f" <{slack_escape(link[0])}|{link[1]}>" if link else ""
    text = text[: SLACK_MAX - len(suffix)] + suffix
    return {"text": text}


_DISCORD_MARKDOWN = re.compile(r"([\\*_~`|>\[\]()#@])")


def discord_escape(text: str) -> str:
    return _DISCORD_MARKDOWN.sub(r"\\\1", text)


def discord_body(body: Mapping[str, Any], console_url: str) -> dict[str, Any]:
    text = _severity(body) + discord_escape(summary(body))
    link = _link(body, console_url)
    suffix = f" [{link[1]}](<{link[0]}>)" if link else ""
    text = text[: DISCORD_MAX - len(suffix)] + suffix
    return {"content": text, "allowed_mentions": {"parse": []}}
