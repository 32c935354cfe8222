"""The log redaction: a secret never reaches the stream, whether it is in the message, its
arguments, an exception's traceback (`exc_info`) or the stack (`stack_info`), in the
plain and the JSON format; secrets registered later (RPC URLs' key parts) too."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from chain.urls import url_secrets
from warden.app.logs import register_secrets, setup_logging

SECRET = "sk_live_h4nter2h4nter2"
URL = "https://mainnet.infura.io/v3/f00dcafe1234567890abcdef?token=qwertyuiop123"


@pytest.fixture(params=[False, True], ids=["plain", "json"])
def stream(request: pytest.FixtureRequest) -> Iterator[io.StringIO]:
    out = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    setup_logging("debug", json=request.param, secrets=[SECRET], stream=out)
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def sk_live_h4nter2h4nter2_frame(log: logging.Logger) -> None:  # the secret in a frame name
    log.warning("where am I", stack_info=True)


def fail_with(message: str) -> None:
    raise RuntimeError(message)


def test_message_arguments_traceback_and_stack_are_masked(stream: io.StringIO) -> None:
    log = logging.getLogger("warden.test")
    log.info("token %s in args", SECRET)
    log.info(f"token {SECRET.upper()} in the message")
    try:
        fail_with(f"provider said: bad key {SECRET}")
    except RuntimeError:
        log.exception("call failed")
    try:
        try:
            fail_with(f"inner {SECRET}")
        except RuntimeError as inner:
            raise ValueError("outer") from inner
    except ValueError:
        log.error("chained", exc_info=True)
    sk_live_h4nter2h4nter2_frame(log)
    text = stream.getvalue()
    assert SECRET not in text and SECRET.upper() not in text
    assert text.count("***") >= 6
    assert "RuntimeError" in text and "Traceback" in text and "where am I" in text
    if text.startswith("{"):
        entries = [json.loads(line) for line in text.splitlines()]
        assert any("exception" in e for e in entries) and any("stack" in e for e in entries)


def test_secrets_registered_later_are_masked_too(stream: io.StringIO) -> None:
    log = logging.getLogger("warden.test")
    register_secrets(url_secrets(URL))
    log.warning("endpoint %s failing", URL)
    log.warning("provider echoed f00dcafe1234567890abcdef and qwertyuiop123")
    try:
        fail_with(f"Cannot connect to {URL}")
    except RuntimeError:
        log.exception("failed")
    text = stream.getvalue()
    for part in ("f00dcafe1234567890abcdef", "qwertyuiop123", URL):
        assert part not in text
