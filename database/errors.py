"""What the caller of the database seam should do:

    DatabaseError          a configuration or schema problem: stop and tell the operator
    ├── UnsupportedDatabase   the URL names no store Warden can open (fix `database:`)
    ├── SchemaTooNew          written by a newer Warden: upgrade, or use another database
    ├── DatabaseBusy          another process holds it: stop that one, or use another
    ├── ReadersBusy           every read connection stayed busy for the wait: retry later
    ├── Deposed               another replica leads now: stop writing and sending, stand by
    └── NotABackup            a file offered as a backup is not one Warden can use (not
                              SQLite, truncated, corrupt, no schema versions): pick another

Driver errors (sqlite3.Error, asyncpg.PostgresError, OSError) pass through unchanged: the
app classifies storage failures (disk full, read-only, server gone) where it decides to
stop (`warden.app.storage`).
"""

from __future__ import annotations


class DatabaseError(RuntimeError):
    """A database the operator must fix before Warden can use it."""


class UnsupportedDatabase(DatabaseError):
    """`database:` names something that is neither a SQLite path nor a PostgreSQL URL."""


class SchemaTooNew(DatabaseError):
    """The database was written by a newer Warden; refuse rather than corrupt it."""


class DatabaseBusy(DatabaseError):
    """Another process holds the database (`Database.exclusive`)."""


class ReadersBusy(DatabaseError):
    """Every connection of a reader pool stayed busy for as long as a borrower may wait
    (`SqliteReaders`): the same read may succeed later."""


class Deposed(DatabaseError):
    """This replica no longer holds the lease (`database.lease`): its writes are refused
    inside their transaction, and it sends nothing more."""


class NotABackup(DatabaseError):
    """A file given as a backup (to restore, or just written) fails its checks."""
