"""The exit statuses of every `warden` command, as the README documents them."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0  # done, or a clean stop after a signal
    RUNTIME_FAILURE = 1  # the work failed: node unreachable, checks failed, a crash
    CONFIG = 2  # bad configuration or usage; the message names the fix (argparse uses 2 too)
    STORAGE = 3  # the database cannot be written: disk full, read-only, I/O error; free
    # space or fix the file, then restart (warden.app.storage.STORAGE_EXIT)
    FORCED = 130  # a second signal forced the exit (warden.app.daemon.FORCED_EXIT)
