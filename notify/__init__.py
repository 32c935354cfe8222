"""Notifications: one catalogue of events (session lifecycle, intents, alerts), a log of
them written in the same transaction as the change that caused each, and their delivery
to channels (webhook, Slack, Discord, command), routed from the log into an outbox in the
same database
(docs/notify.md). Beside `executor` and `rules`: it imports the indexer's types and the
database seam, never those two, nor `warden`."""

from notify.catalogue import (
    CATEGORIES,
    KINDS,
    Kind,
    NotifyEvent,
    Severity,
    known_pattern,
    matches_kind,
)
from notify.delivery import Deliverer, DeliveryStats, attempt, backoff, encode
from notify.derive import event_id, retraction, session_events
from notify.log import EventFilter, EventLog, EventReads, LoggedEvent
from notify.outbox import STATES, Deliveries, DeliveryRow
from notify.prune import Pruner, PruneReport
from notify.routing import Route, Router
from notify.settings import CHANNEL_TYPES, NotifySettings, RetentionSettings, WebhookChannel
from notify.signing import REPLAY_WINDOW, signature
from notify.transport import HttpPoster, MockPoster, Outcome, Poster

__all__ = [
    "CATEGORIES",
    "CHANNEL_TYPES",
    "KINDS",
    "REPLAY_WINDOW",
    "STATES",
    "Deliverer",
    "Deliveries",
    "DeliveryRow",
    "DeliveryStats",
    "EventFilter",
    "EventLog",
    "EventReads",
    "HttpPoster",
    "Kind",
    "LoggedEvent",
    "MockPoster",
    "NotifyEvent",
    "NotifySettings",
    "Outcome",
    "Poster",
    "PruneReport",
    "Pruner",
    "RetentionSettings",
    "Route",
    "Router",
    "Severity",
    "WebhookChannel",
    "attempt",
    "backoff",
    "encode",
    "event_id",
    "known_pattern",
    "matches_kind",
    "retraction",
    "session_events",
    "signature",
]
