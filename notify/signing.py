"""Webhook signatures: HMAC-SHA256 over `<timestamp>.<body>` with the channel's secret.

    X-Warden-Timestamp: 1765130000                      (unix seconds of this attempt)
    X-Warden-Signature: v1=<64 hex digits>               (HMAC-SHA256, hex)

A receiver recomputes the HMAC over the timestamp header, a dot and the raw body bytes,
compares in constant time, and refuses a timestamp more than `REPLAY_WINDOW` seconds
from its clock (docs/notify.md has the snippet). Each attempt is signed anew, so a retry
hours later still passes the window; a replayed request fails it, and a replay within
it carries an event id the receiver has seen (deliveries are at-least-once: receivers
deduplicate by id anyway).
"""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE = "X-Warden-Signature"
TIMESTAMP = "X-Warden-Timestamp"
EVENT_ID = "X-Warden-Event-Id"
EVENT_KIND = "X-Warden-Event-Kind"
REPLAY_WINDOW = 300  # seconds either way a receiver should accept
VERSION = "v1"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"{VERSION}={mac.hexdigest()}"


def headers(
    secret: str | None, timestamp: int, body: bytes, event_id: str, kind: str
) -> dict[str, str]:
    out = {
        "Content-Type": "application/json",
        TIMESTAMP: str(timestamp),
        EVENT_ID: event_id,
        EVENT_KIND: kind,
    }
    if secret is not None:
        out[SIGNATURE] = signature(secret, timestamp, body)
    return out
