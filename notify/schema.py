"""The notification tables and their migrations.

`notify_events` is the event log: one row per event, numbered by `id` in the order they
were written — the cursor /stream and `EventReads.after` page by. It is written only by
the leader's one writing task (inside the indexer's and the outbox's transactions), so a
row numbered below a committed row is committed too: a reader that has seen cursor N
and later asks for rows after N misses none (`id` values of rolled-back transactions
are skipped, never reused later).

`notify_deliveries` is the delivery outbox: one row per event and channel whose filters
let it through, inserted by the delivery task's router after the event is logged
(`notify.routing`; its cursors are `route:<channel>` rows of `notify_cursors`), moving
pending → delivered, or pending → dead after the configured attempts (re-drive: dead →
pending). `id` orders them as their events.

`event_id` is the event's stable id; `position` the chain position of its cause (NULL
when no block caused it), so a reorg retracts exactly the events at or above its cut;
`retracted` marks the ones already retracted. `body` is the JSON document, without its
cursor (added on read).
"""

from __future__ import annotations

from database.migrations import Step

COMPONENT = "notify"

MIGRATIONS: list[Step] = [
    """
    CREATE TABLE notify_events (
        id         INTEGER PRIMARY KEY,
        event_id   TEXT NOT NULL UNIQUE,
        kind       TEXT NOT NULL,
        severity   INTEGER NOT NULL,
        wallet     TEXT,
        owner      TEXT,
        policy     TEXT,
        position   INTEGER,
        retracted  INTEGER NOT NULL DEFAULT 0,
        at_ms      INTEGER NOT NULL,
        body       TEXT NOT NULL
    );
    CREATE INDEX notify_events_by_position ON notify_events (position);
    CREATE INDEX notify_events_by_wallet ON notify_events (wallet, id);
    CREATE INDEX notify_events_by_kind ON notify_events (kind, id)
    """,
    # 2: the delivery outbox, one row per (channel, event), written with the event
    """
    CREATE TABLE notify_deliveries (
        id           INTEGER PRIMARY KEY,
        event_row    INTEGER NOT NULL,
        channel      TEXT NOT NULL,
        wallet       TEXT,
        state        TEXT NOT NULL,
        attempts     INTEGER NOT NULL DEFAULT 0,
        next_ms      INTEGER NOT NULL,
        last_error   TEXT,
        created_ms   INTEGER NOT NULL,
        updated_ms   INTEGER NOT NULL,
        delivered_ms INTEGER,
        UNIQUE (channel, event_row)
    );
    CREATE INDEX notify_deliveries_by_state ON notify_deliveries (channel, state, event_row);
    CREATE INDEX notify_deliveries_by_event ON notify_deliveries (event_row)
    """,
    # 3: how far the relay of another package's write-ahead records (intent transitions)
    # has logged events, moved in the transaction that logs them
    """
    CREATE TABLE notify_cursors (
        name     TEXT PRIMARY KEY,
        position INTEGER NOT NULL
    )
    """,
    # 4: nothing reads the log by kind (filters run on what is read by cursor, and
    # /notifications filters deliveries): one index less to keep up in every commit
    "DROP INDEX notify_events_by_kind",
    # 5: when a channel's next retry is due, without reading its whole queue (the
    # delivery task asks after every wake-up; a queue holds up to `delivery.queue` rows)
    "CREATE INDEX notify_deliveries_due ON notify_deliveries (channel, state, next_ms)",
]
