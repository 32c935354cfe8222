"""Notifications: one catalogue of events (session lifecycle, intents, alerts), a log of
them written in the same transaction as the change that caused each, and (see
docs/notify.md) their delivery to channels. Beside `executor` and `rules`: it imports
the indexer's types and the database seam, never those two, nor `warden`."""

from notify.catalogue import (
    CATEGORIES,
    KINDS,
    Kind,
    NotifyEvent,
    Severity,
    known_pattern,
    matches_kind,
)
from notify.derive import event_id, retraction, session_events
from notify.log import EventFilter, EventLog, EventReads, LoggedEvent

__all__ = [
    "CATEGORIES",
    "KINDS",
    "EventFilter",
    "EventLog",
    "EventReads",
    "Kind",
    "LoggedEvent",
    "NotifyEvent",
    "Severity",
    "event_id",
    "known_pattern",
    "matches_kind",
    "retraction",
    "session_events",
]
