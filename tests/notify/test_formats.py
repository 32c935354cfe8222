"""Slack and Discord bodies held to the formats those services document, for every kind
and for hostile content (a policy name that tries to ping everyone, inject a link or
markdown, or run past the length limits); the webhook body is the event itself, signed."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import orjson
import pytest

from notify import KINDS, NotifyEvent, Severity, encode, signature
from notify.formats import DISCORD_MAX, SLACK_MAX, discord_body, slack_body, summary
from notify.settings import NotifySettings

CONSOLE = "https://warden.example/console"
HOSTILE = [
    "merchant",
    "<!channel> <!everyone> <@U123> <https://evil.example|click>",
    "@everyone @here <@&123> **bold** __u__ ~~s~~ `code` ||spoiler|| [x](https://evil.example)",
    "a & b < c > d",
    "x" * 5000,
    "line\nbreak\r\n# heading\n> quote",
]


def event(kind: str, policy: str) -> NotifyEvent:
    wallet = "0x8464135c8F25Da09e49BC8782676a84730C318bC"
    return NotifyEvent(
        id=f"{kind}:1:0x1", kind=kind, severity=KINDS[kind].severity, at_ms=1,
        data={**KINDS[kind].example, "message": policy} if kind == "rule.notify"
        else dict(KINDS[kind].example),
        wallet=None if kind.startswith("alert.") else wallet,
        owner=wallet, policy=policy, position=1,
    )  # fmt: skip


def slack_problems(body: dict[str, Any]) -> list[str]:
    """api.slack.com/messaging/webhooks: a JSON object with `text`; in mrkdwn text the
    only control characters are &, <, > and must be escaped except in our own link."""
    out = []
    if set(body) != {"text"} or not isinstance(body["text"], str) or not body["text"]:
        out.append(f"not a text message: {sorted(body)}")
        return out
    text = body["text"]
    if len(text) > SLACK_MAX:
        out.append(f"{len(text)} characters")
    links = re.findall(r"<([^<>]*)>", text)
    if len(links) != 1 or not links[0].startswith(CONSOLE + "/") or "|" not in links[0]:
        out.append(f"links other than ours: {links}")
    bare = re.sub(r"<[^<>]*>$", "", text)
    if re.search(r"[<>]|&(?!amp;|lt;|gt;)", bare):
        out.append("unescaped control character")
    return out


def discord_problems(body: dict[str, Any]) -> list[str]:
    """discord.com/developers/docs/resources/webhook#execute-webhook: `content` of at
    most 2000 characters; `allowed_mentions.parse` empty so nothing can ping."""
    out = []
    content = body.get("content")
    if not isinstance(content, str) or not 0 < len(content) <= DISCORD_MAX:
        out.append("content missing or over 2000 characters")
        return out
    if body.get("allowed_mentions") != {"parse": []}:
        out.append("mentions not disabled")
    if set(body) - {"content", "allowed_mentions"}:
        out.append(f"unknown fields {sorted(body)}")
    links = re.findall(r"(?<!\\)\[([^\]]*)\]\(<([^>]*)>\)", content)
    if len(links) != 1 or not links[0][1].startswith(CONSOLE + "/"):
        out.append(f"links other than ours: {links}")
    unescaped = re.sub(r"\[[a-z]+\]\(<[^>]*>\)$", "", content)
    if re.search(r"(?<!\\)[*_~`|\[\]]", unescaped) or re.search(r"(?<!\\)@", unescaped):
        out.append("unescaped markdown or mention")
    return out


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("policy", HOSTILE, ids=range(len(HOSTILE)))
def test_slack_and_discord_bodies_follow_their_formats(kind: str, policy: str) -> None:
    e = event(kind, policy)
    slack = slack_body(e.body(cursor=1), CONSOLE)
    discord = discord_body(e.body(cursor=1), CONSOLE)
    assert slack_problems(slack) == [], slack
    assert discord_problems(discord) == [], discord
    assert not re.search(r"[\r\n]", summary(e.body()))  # one line, whatever came in


def test_messages_say_what_happened_with_exact_amounts() -> None:
    e = event("session.closed", "merchant")
    text = summary(e.body())
    assert text == (
        "session 0x8464…18bC [merchant] closed (stop_loss), refund 1128750000000000000000"
    )
    slack = slack_body(e.body(), CONSOLE)["text"]
    assert slack.endswith(
        f"<{CONSOLE}/sessions/0x8464135c8F25Da09e49BC8782676a84730C318bC|session>"
    )
    alert = NotifyEvent(id="a", kind="alert.relayer_balance_low", severity=Severity.CRITICAL,
                        at_ms=1, data={"state": "cleared", "balance": "5"})  # fmt: skip
    assert summary(alert.body()) == "CLEARED relayer_balance_low: balance 5"
    assert discord_body(alert.body(), CONSOLE)["content"].startswith("🚨 CLEARED")


def test_the_webhook_sends_the_event_itself_signed_over_timestamp_and_body() -> None:
    cfg = NotifySettings.model_validate({"channels": [
        {"name": "h", "type": "webhook", "url": "https://x.example/h", "secret": "k" * 32}
    ]})  # fmt: skip
    e = event("session.closed", "merchant")
    raw = encode(cfg.channels[0], e.body(cursor=7), CONSOLE)
    assert orjson.loads(raw) == e.body(cursor=7)
    mac = hmac.new(b"k" * 32, b"1765130000." + raw, hashlib.sha256).hexdigest()
    assert signature("k" * 32, 1765130000, raw) == f"v1={mac}"
    assert signature("k" * 32, 1765130001, raw) != f"v1={mac}"
