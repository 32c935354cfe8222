"""Logging for the daemon: readable lines or one JSON object per line, and a last line of
defence that masks secret values wherever they would appear.

Secrets are never passed to a logger on purpose (the signer keeps its key in a closure,
the config holds secrets as SecretStr, RPC URLs are logged as `chain.client.redact_url`
shows them); the redacting filter is there for what nobody planned, such as a provider
echoing an API key that was part of an RPC URL, or an exception whose traceback quotes
one. It masks the message, the `exc_info` traceback and the `stack_info` alike.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterable
from typing import TextIO

import orjson

MASK = "***"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": round(record.created, 3),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:  # the Redact filter's masked text when it ran
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return orjson.dumps(entry).decode()


class Redact(logging.Filter):
    """Replaces every occurrence of a secret in the formatted message, the exception's
    traceback (`exc_info`) and the stack (`stack_info`) by ***."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too (an RPC URL's key parts, known once the config is read)."""
        variants = set(self.secrets)
        for secret in secrets:
            if len(secret) < 6:  # too short to mask without mangling ordinary words
                continue
            variants |= {secret, secret.lower(), secret.upper()}
            if secret.lower().startswith("0x"):
                variants |= {secret[2:], secret[2:].lower(), secret[2:].upper()}
        self.secrets = sorted(variants, key=len, reverse=True)

    def mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        masked = self.mask(message)
        if masked != message:
            record.msg, record.args = masked, None
        if record.exc_info and not record.exc_text:
            # Formatted here, once, so every handler prints the masked text.
            record.exc_text = _FORMAT.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.mask(record.exc_text)
        if record.stack_info:
            record.stack_info = self.mask(record.stack_info)
        return True


_FORMAT = logging.Formatter()


def register_secrets(secrets: Iterable[str]) -> None:
    """Add secrets to the redaction of every handler `setup_logging` installed."""
    values = list(secrets)
    for handler in logging.getLogger().handlers:
        for f in handler.filters:
            if isinstance(f, Redact):
                f.add(values)


def setup_logging(
    level: str = "info",
    *,
    json: bool = False,
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    if json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handler.addFilter(Redact(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    # aiohttp's access log and web3's debug chatter are not ours to print
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    logging.getLogger("web3").setLevel(logging.WARNING)
