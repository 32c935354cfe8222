"""How the API's HTTP server meets hostile clients: size limits on what aiohttp parses,
idle and slow connections closed, and the parser's refusals logged as one line, not as
ERROR tracebacks.

    runner = web.AppRunner(app, **runner_options())      # or TestServer(app, **...)

aiohttp answers a request it cannot parse (request line or header over the limits, bad
percent-encoding or bytes in the URL, a malformed header) with 400 itself, before any
route sees it, and logs it through the handler's logger with `logger.exception`: an
ERROR and a traceback for what is the client's fault. The handler here gets a logger of
its own whose filter turns those records into one INFO line naming the client and the
kind of refusal (never the request's content, which may hold a token); a genuine failure
inside aiohttp stays an ERROR with its traceback.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError

# The logger the HTTP server reports through (aiohttp's own is `aiohttp.server`).
SERVER_LOG = "warden.api.http"


@dataclass(frozen=True)
class HttpLimits:
    """What one connection may send and how long it may sit.

    `keepalive_timeout` is both the idle timeout and the request-head timeout: aiohttp
    arms it when a connection opens and again after each response, and when it fires on
    a connection still waiting for a complete request head, it closes the connection —
    a client trickling its headers (slowloris) gets no more than this per request. The
    API answers from SQLite in milliseconds, so no honest client needs longer.
    """

    keepalive_timeout: float = 15.0  # seconds: idle, or to send a complete request head
    max_line_size: int = 8190  # request line (path + query) and any one header line
    max_field_size: int = 8190  # one header value
    max_headers: int = 64  # header lines per request
    lingering_time: float = 2.0  # seconds spent draining an unwanted body before closing


DEFAULT_LIMITS = HttpLimits()


class _ClientFaults(logging.Filter):
    """Demote aiohttp's report of a request it refused to parse to one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if not isinstance(exc, HttpProcessingError):
            return True
        peer = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "refused a malformed HTTP request from %s: %s (%s)"
        record.args = (peer, exc.code, type(exc).__name__)
        record.exc_info = None
        record.exc_text = None
        level = min(record.levelno, logging.INFO)  # aiohttp logs some at DEBUG already
        record.levelno, record.levelname = level, logging.getLevelName(level)
        return logging.getLogger(record.name).isEnabledFor(level)


def server_logger() -> logging.Logger:
    logger = logging.getLogger(SERVER_LOG)
    if not any(isinstance(f, _ClientFaults) for f in logger.filters):
        logger.addFilter(_ClientFaults())
    return logger


def runner_options(limits: HttpLimits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Keyword arguments for `web.AppRunner` (or aiohttp's `TestServer`): no access
    log, these limits, and the logger above."""
    return {
        "access_log": None,
        "logger": server_logger(),
        "keepalive_timeout": limits.keepalive_timeout,
        "max_line_size": limits.max_line_size,
        "max_field_size": limits.max_field_size,
        "max_headers": limits.max_headers,
        "lingering_time": limits.lingering_time,
    }
