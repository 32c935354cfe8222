"""The executor's tables, their migrations, and the states their rows move through.

An intent moves pending → submitted → mined → confirmed, or ends failed or obsolete with
its reason (or dry_run, when nothing is sent). A *job* is one nonce's worth of work (a
single close, a sweep, a batch of closes, or a cancel) and carries one or more intents;
every signed transaction of a job (replacements included) is a row in `transactions`,
written *before* it is sent. Every transaction of a job shares the job's nonce, so at most
one of them can ever be mined: that, and writing ahead, is what makes a crash at any point
safe (see `executor.py`).

Rule latches live here too, because they must be stored in the same transaction as the
intents they produce (`Outbox.record`): a restart then never fires twice and never forgets.
Fees are decimal TEXT; wall-clock times are unix milliseconds, chain times unix seconds.
"""

from __future__ import annotations

import aiosqlite

from database import Database
from database.migrations import Step
from database.sqlite import SqliteDatabase

COMPONENT = "executor"

STATES = ("pending", "submitted", "mined", "confirmed", "failed", "obsolete", "dry_run")
FINAL_STATES = frozenset({"confirmed", "failed", "obsolete", "dry_run"})
ORPHANED = "trigger orphaned by a reorg"  # the detail of intents a reorg made obsolete
# How the details of intents settled by their job's receipt begin (a reorg reopens them).
BATCH_MEMBER = "batch member reverted"
REVERTED = "reverted on chain"
# How the detail of an intent failed for closes mined without effect begins.
NO_EFFECT_DETAIL = "mined without effect"
# How the detail of an intent taken out of batching begins (`isolated_wallets`).
ISOLATED_DETAIL = "taken out of batching"

# 1, as shipped for SQLite (byte for byte: existing files migrate as before).
_TABLES = """
    CREATE TABLE intents (
        id                 INTEGER PRIMARY KEY,
        key                TEXT NOT NULL UNIQUE,
        wallet             TEXT NOT NULL,
        rule               TEXT NOT NULL,
        action             TEXT NOT NULL,
        reason             TEXT NOT NULL,
        position           INTEGER NOT NULL,
        triggered_at       INTEGER NOT NULL,
        rules_version      TEXT NOT NULL,
        state              TEXT NOT NULL,
        detail             TEXT,
        job_id             INTEGER,
        confirmed_position INTEGER,
        created_ms         INTEGER NOT NULL,
        updated_ms         INTEGER NOT NULL
    );
    CREATE INDEX intents_by_state ON intents (state, id);
    CREATE INDEX intents_by_wallet ON intents (wallet, id);
    CREATE INDEX intents_by_job ON intents (job_id);
    CREATE TABLE jobs (
        id                  INTEGER PRIMARY KEY,
        nonce               INTEGER,
        kind                TEXT NOT NULL,
        to_address          TEXT NOT NULL,
        data                TEXT NOT NULL,
        gas                 INTEGER NOT NULL,
        state               TEXT NOT NULL,
        mined_hash          TEXT,
        mined_block         INTEGER,
        receipt_status      INTEGER,
        gas_used            INTEGER,
        effective_gas_price TEXT,
        created_ms          INTEGER NOT NULL,
        updated_ms          INTEGER NOT NULL
    );
    CREATE INDEX jobs_by_state ON jobs (state, nonce);
    CREATE TABLE transactions (
        hash                     TEXT PRIMARY KEY,
        job_id                   INTEGER NOT NULL REFERENCES jobs (id),
        nonce                    INTEGER NOT NULL,
        max_fee_per_gas          TEXT NOT NULL,
        max_priority_fee_per_gas TEXT NOT NULL,
        raw                      TEXT NOT NULL,
        state                    TEXT NOT NULL,
        error                    TEXT,
        created_ms               INTEGER NOT NULL,
        sent_ms                  INTEGER
    );
    CREATE INDEX transactions_by_job ON transactions (job_id, created_ms);
    CREATE TABLE refusals (
        id         INTEGER PRIMARY KEY,
        intent_key TEXT NOT NULL,
        guard      TEXT NOT NULL,
        reason     TEXT NOT NULL,
        at_ms      INTEGER NOT NULL
    );
    CREATE INDEX refusals_by_intent ON refusals (intent_key, id);
    CREATE TABLE rule_latches (
        wallet TEXT NOT NULL,
        rule   TEXT NOT NULL,
        PRIMARY KEY (wallet, rule)
    );
    CREATE TABLE executor_state (
        id         INTEGER PRIMARY KEY CHECK (id = 1),
        relayer    TEXT NOT NULL,
        next_nonce INTEGER NOT NULL
    )
    """
# PostgreSQL has no rowid: the attempts of a job are listed in the order they were
# written (`Outbox.jobs`, whose last is the one to send), and two may share a
# millisecond, so the order SQLite keeps in its implicit rowid is an explicit column
# of the same name there, and the query reads the same on both.
_ATTEMPT_ORDER = "ALTER TABLE transactions ADD COLUMN rowid INTEGER GENERATED ALWAYS AS IDENTITY"

_CHANGES_TABLE = """
    CREATE TABLE intent_changes (
        id        INTEGER PRIMARY KEY,
        key       TEXT NOT NULL,
        old_state TEXT,
        new_state TEXT NOT NULL,
        at_ms     INTEGER NOT NULL
    )
"""
_CHANGES = (
    _CHANGES_TABLE
    + """;
    CREATE TRIGGER intents_inserted AFTER INSERT ON intents BEGIN
        INSERT INTO intent_changes (key, old_state, new_state, at_ms)
        VALUES (NEW.key, NULL, NEW.state, NEW.updated_ms);
    END;
    CREATE TRIGGER intents_moved AFTER UPDATE OF state ON intents
    WHEN OLD.state IS NOT NEW.state BEGIN
        INSERT INTO intent_changes (key, old_state, new_state, at_ms)
        VALUES (NEW.key, OLD.state, NEW.state, NEW.updated_ms);
    END
"""
)
_CHANGES_PG = (
    _CHANGES_TABLE
    + """;
    CREATE FUNCTION intent_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO intent_changes (key, old_state, new_state, at_ms) VALUES (NEW.key,
            CASE WHEN TG_OP = 'UPDATE' THEN OLD.state END, NEW.state, NEW.updated_ms);
        RETURN NULL;
    END $$;
    CREATE TRIGGER intents_inserted AFTER INSERT ON intents
        FOR EACH ROW EXECUTE FUNCTION intent_changed();
    CREATE TRIGGER intents_moved AFTER UPDATE OF state ON intents
        FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
        EXECUTE FUNCTION intent_changed()
"""
)

MIGRATIONS: list[Step] = [
    {"sqlite": _TABLES, "postgresql": _TABLES + ";\n" + _ATTEMPT_ORDER},
    # 2: relayer protection. `job_intents` holds every job an intent ever had (a requeued
    # intent's `job_id` names only its latest), so the rate guard counts them all;
    # `mined_without_effect` counts the intent's mined transactions that closed nothing;
    # `retry_after_position` parks an intent failed for that until its session moves on
    # chain; jobs keep their sender, the hash of the block that mined them (to tell a
    # reorg from a node that forgets) and when their receipt was first seen (the gas
    # budget's window).
    """
    CREATE TABLE job_intents (
        job_id    INTEGER NOT NULL REFERENCES jobs (id),
        intent_id INTEGER NOT NULL REFERENCES intents (id),
        wallet    TEXT NOT NULL,
        PRIMARY KEY (job_id, intent_id)
    );
    CREATE INDEX job_intents_by_wallet ON job_intents (wallet, job_id);
    INSERT INTO job_intents (job_id, intent_id, wallet)
        SELECT job_id, id, wallet FROM intents WHERE job_id IS NOT NULL;
    ALTER TABLE intents ADD COLUMN mined_without_effect INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE intents ADD COLUMN retry_after_position INTEGER;
    CREATE INDEX intents_parked ON intents (retry_after_position)
        WHERE retry_after_position IS NOT NULL;
    ALTER TABLE jobs ADD COLUMN sender TEXT;
    ALTER TABLE jobs ADD COLUMN mined_block_hash TEXT;
    ALTER TABLE jobs ADD COLUMN mined_ms INTEGER;
    CREATE INDEX jobs_by_mined_ms ON jobs (mined_ms) WHERE mined_ms IS NOT NULL
    """,
    # 3: isolation. A session whose close misbehaved inside a batch (failed for a reason
    # that does not make it obsolete, or ran out of its gas stipend) is never batched
    # again: it is closed alone, under `single_close_gas_cap`. Per wallet, since the
    # misbehaving part is the session's token, whatever rule fires next; the intent that
    # showed it and why are kept for the operator.
    """
    CREATE TABLE isolated_wallets (
        wallet     TEXT PRIMARY KEY,
        reason     TEXT NOT NULL,
        intent_key TEXT NOT NULL,
        at_ms      INTEGER NOT NULL
    )
    """,
    # 4: intent transitions, recorded by the database itself in the transaction that
    # makes them (every path that moves an intent, present and future, is covered): the
    # write-ahead record the notification events of intents are derived from
    # (`IntentChanges`, read by warden.app's notification relay).
    {"sqlite": _CHANGES, "postgresql": _CHANGES_PG},
]


def sqlite_connection(db: Database) -> aiosqlite.Connection:
    """The SQLite connection underneath, for callers not on the seam yet."""
    if not isinstance(db, SqliteDatabase):
        raise TypeError(f"not a SQLite store: {db.display}")
    return db.conn
