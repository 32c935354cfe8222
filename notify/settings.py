"""The `notify:` section: channels (each with its filters) and the delivery policy.

    notify:
      console_url: https://warden.example.com     # links in Slack / Discord messages
      delivery: {attempts: 8, base_delay: 0.25, max_delay: 300, timeout: 10, concurrency: 4}
      retention: {events_days: 30, delivered_days: 7, dead_days: 0, batch: 1000, interval: 300}
      channels:
        - name: backend
          type: webhook                 # webhook | slack | discord | command
          url: https://api.example.com/warden-events
          secret: ${WARDEN_WEBHOOK_SECRET}   # or secret_file: /run/secrets/warden-hook
          kinds: [session, intent.failed] # kinds or categories; default: every kind
          policies: [merchant]            # default: every policy
          owners: ["0xAbC…"]              # default: every owner
          min_severity: info              # info | warning | critical

A channel's `url` and `secret` are secrets: never logged, never quoted in an error
(`url` of a Slack or Discord webhook is its credential). A channel is named in logs,
metrics and /notifications by its `name`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BeforeValidator, Field, SecretStr, field_validator, model_validator

from chain.fields import Address, Int, Seconds, Section, ZeroOrMore
from notify.catalogue import CATEGORIES, Severity, known_pattern, matches_kind

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MIN_SECRET = 16  # characters of a webhook signing secret


def _url(value: object) -> object:
    """An http(s) URL with a host; the message never quotes it (it may be a credential)."""
    raw = value.get_secret_value() if isinstance(value, SecretStr) else value
    if not isinstance(raw, str):
        raise ValueError("expected an http:// or https:// URL")
    try:
        parts = urlsplit(raw.strip())
        port = parts.port  # raises on a bad port
    except ValueError:
        raise ValueError("not a valid URL (check its host and port)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http:// or https:// URL with a host")
    del port
    return raw.strip()


Url = Annotated[SecretStr, BeforeValidator(_url)]


class Filters(Section):
    kinds: list[str] = Field(default_factory=lambda: ["*"])
    policies: list[str] | None = None
    owners: list[Address] | None = None
    min_severity: Literal["info", "warning", "critical"] = "info"

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: list[str]) -> list[str]:
        for k in kinds:
            if not known_pattern(k):
                raise ValueError(
                    f"{k!r} names no event: write a kind (session.closed), a category "
                    f"({', '.join(CATEGORIES)}) or * — docs/notify.md lists them"
                )
        if not kinds:
            raise ValueError("an empty list lets nothing through: leave kinds out for all")
        return kinds

    def admits(self, kind: str, severity: Severity, policy: str | None, owner: str | None) -> bool:
        if severity < Severity.parse(self.min_severity):
            return False
        if not any(matches_kind(p, kind) for p in self.kinds):
            return False
        # a policy or owner filter passes only the events of those sessions
        if self.policies is not None and policy not in self.policies:
            return False
        return self.owners is None or (owner is not None and owner.lower() in self._owners)

    @property
    def _owners(self) -> frozenset[str]:
        return frozenset(o.lower() for o in self.owners or ())


class ChannelBase(Filters):
    name: str

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(
                "a channel name is 1 to 64 letters, digits, '.', '_' or '-' (it names the "
                "channel in logs, metrics and /notifications)"
            )
        return name


class WebhookChannel(ChannelBase):
    type: Literal["webhook"]
    url: Url
    secret: SecretStr | None = None  # HMAC-SHA256 signing key; `secret_file` fills it
    unsigned: bool = False  # true: send without a signature (say so explicitly)

    @model_validator(mode="after")
    def _signed(self) -> WebhookChannel:
        if self.secret is None and not self.unsigned:
            raise ValueError(
                "a webhook needs `secret` (or `secret_file`) to sign its requests — "
                "generate one with `openssl rand -hex 32`; `unsigned: true` sends unsigned"
            )
        if self.secret is not None and len(self.secret.get_secret_value()) < MIN_SECRET:
            raise ValueError(
                f"the webhook secret is shorter than {MIN_SECRET} characters: a short key "
                "can be guessed — use `openssl rand -hex 32`"
            )
        return self


class SlackChannel(ChannelBase):
    type: Literal["slack"]
    url: Url  # the incoming-webhook URL (https://hooks.slack.com/services/…)


class DiscordChannel(ChannelBase):
    type: Literal["discord"]
    url: Url  # https://discord.com/api/webhooks/…


class CommandChannel(ChannelBase):
    type: Literal["command"]
    command: list[str]  # argv: run without a shell, the event's JSON on stdin

    @field_validator("command")
    @classmethod
    def _argv(cls, argv: list[str]) -> list[str]:
        if not argv or not argv[0].strip():
            raise ValueError("write the program and its arguments as a list: [/usr/bin/x, -q]")
        return argv


Channel = Annotated[
    WebhookChannel | SlackChannel | DiscordChannel | CommandChannel,
    Field(discriminator="type"),
]
CHANNEL_TYPES = ("webhook", "slack", "discord", "command")
CHANNEL_MODELS = (WebhookChannel, SlackChannel, DiscordChannel, CommandChannel)


class DeliverySettings(Section):
    attempts: Int = 10  # then the delivery is dead-lettered (`warden notify redrive`)
    base_delay: Seconds = 0.25  # the first retry waits up to this long (full jitter)
    max_delay: Seconds = 300.0  # the backoff's cap: base * 2^n, at most this
    timeout: Seconds = 10.0  # per attempt: connect, send, answer
    concurrency: Int = 4  # attempts in flight per channel
    poll: Seconds = 1.0  # how often the delivery task looks for due work when not woken
    # deliveries pending per channel at most: later events wait in the log (never lost,
    # never pruned) until these drain, so a storm or a dead receiver bounds the outbox
    queue: Int = 10_000

    @field_validator("queue")
    @classmethod
    def _queue(cls, queue: int) -> int:
        if not 1 <= queue <= 1_000_000:
            raise ValueError("the queue is from 1 to 1000000 pending deliveries per channel")
        return queue

    @model_validator(mode="after")
    def _sane(self) -> DeliverySettings:
        if not 1 <= self.attempts <= 1000:
            raise ValueError("delivery.attempts is from 1 to 1000")
        if not 1 <= self.concurrency <= 256:
            raise ValueError("delivery.concurrency is from 1 to 256")
        if self.max_delay < self.base_delay:
            raise ValueError("delivery.max_delay is below delivery.base_delay")
        return self


class RetentionSettings(Section):
    """How long the event log and the outbox keep rows (`notify/prune.py`). 0 keeps for
    good. An event goes once it is older than `events_days` and none of its deliveries
    is kept: a pending delivery is never pruned, a dead one only after `dead_days`."""

    events_days: ZeroOrMore = 30.0  # events older than this go (with nothing still owed)
    delivered_days: ZeroOrMore = 7.0  # delivered deliveries go this long after delivery
    dead_days: ZeroOrMore = 0.0  # dead letters go this long after dying; 0: until re-driven
    batch: Int = 1000  # rows per DELETE: the writer is held for one small batch at a time
    interval: ZeroOrMore = 300.0  # seconds between pruning passes (the leader's); 0: never

    @field_validator("events_days", "delivered_days", "dead_days")
    @classmethod
    def _days(cls, days: float) -> float:
        if not 0 <= days <= 36_500:
            raise ValueError("days from 0 (keep for good) to 36500")
        return days

    @field_validator("batch")
    @classmethod
    def _batch(cls, batch: int) -> int:
        if not 1 <= batch <= 10_000:
            raise ValueError("rows per batch from 1 to 10000 (default 1000)")
        return batch

    @field_validator("interval")
    @classmethod
    def _interval(cls, interval: float) -> float:
        if interval != 0 and not 1 <= interval <= 86_400:
            raise ValueError("seconds from 1 to 86400, or 0 to never prune")
        return interval


class NotifySettings(Section):
    console_url: str = "http://127.0.0.1:8080"  # where message links point (console / API)
    lag_alert_blocks: Int = 50  # alert.indexing_lag while the index is further behind
    unmined_alert_blocks: Int = 20  # alert.tx_unmined once a sent job waits this long
    delivery: DeliverySettings = DeliverySettings()
    retention: RetentionSettings = RetentionSettings()
    channels: list[Channel] = Field(default_factory=list)

    @field_validator("channels")
    @classmethod
    def _unique(cls, channels: list[Channel]) -> list[Channel]:
        seen: set[str] = set()
        for c in channels:
            if c.name in seen:
                raise ValueError(f"two channels are named {c.name!r}: names must be unique")
            seen.add(c.name)
        return channels

    def channel(self, name: str) -> Channel | None:
        return next((c for c in self.channels if c.name == name), None)
