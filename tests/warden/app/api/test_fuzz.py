"""A property fuzz of every route, driven by the API's own OpenAPI document: schemathesis
generates requests from each operation's parameters (valid ones, and invalid ones in
negative mode) and sends them over real HTTP to the app served on 127.0.0.1 over the
indexed database. No answer may be a 5xx, each must be documented for its route (status,
content type, body schema), invalid input must be refused, and nothing is logged as an
ERROR.

`WARDEN_API_FUZZ_EXAMPLES` sets the examples per operation and mode (default 15: some
750 requests over the 28 operations; `make chaos` runs more)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import APIOperation, Case, CheckFunction, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests.warden.app.api.conftest import Indexed
from warden.app.api import LiveState, create_app, serve
from warden.app.api.prepare_chain import Preparation
from warden.devnet import free_port

EXAMPLES = int(os.environ.get("WARDEN_API_FUZZ_EXAMPLES", "15"))
TOKEN = "fuzz-token-0123456789abcdef0123456789abcdef"


@contextlib.contextmanager
def served_in_thread(
    db: Path, token: str | None, prepare: Preparation | None = None
) -> Iterator[str]:
    """The app as the daemon serves it (with the prepare routes when `prepare` is
    given), on an event loop of its own in a thread (the fuzzer's client is synchronous);
    its base URL."""
    port = free_port()
    started = threading.Event()
    problem: list[BaseException] = []
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            # caught up: the one intended 5xx (/ready's 503) is tested on its own
            live = LiveState(head=10**6, indexed_block=10**6, caught_up=True)
            app = create_app(db, live, token=token, prepare=prepare)
            async with serve(app, "127.0.0.1", port, token=token):
                started.set()
                await stop.wait()
        except BaseException as exc:
            problem.append(exc)
            started.set()

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    try:
        assert started.wait(60) and not problem, problem
        yield f"http://127.0.0.1:{port}"
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
        loop.close()


def fuzz(
    operation: APIOperation[Any, Any, Any, Any],
    base: str,
    http: requests.Session,
    auth: dict[str, str] | None,
    statuses: Counter[int],
) -> int:
    """Fuzz one operation in each mode that applies; how many requests were sent."""
    sent = 0
    # A cursor is an opaque token: a string of its documented shape is still a 400
    # unless the API issued it, so "schema-valid is accepted" cannot hold there.
    cursor = any(p.name == "cursor" for p in operation.query)
    excluded: list[CheckFunction] = [positive_data_acceptance] if cursor else []
    if auth is not None:
        # The right token is sent on every case, over whatever Authorization header the
        # negative mode broke on purpose, so a case it counts as invalid may be valid as
        # sent; invalid data is checked in the open run, a missing or wrong token below.
        excluded.append(negative_data_rejection)
    modes = [GenerationMode.POSITIVE]
    if operation.path_parameters or operation.query:  # something to get wrong
        modes.append(GenerationMode.NEGATIVE)
    for mode in modes:

        @settings(
            max_examples=EXAMPLES, deadline=None, database=None, phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )  # fmt: skip
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case: Case[Any]) -> None:
            nonlocal sent
            if operation.path == "/stream":  # the log as it is now, then the end
                case.query = {**(case.query or {}), "follow": "false"}
            response = case.call_and_validate(
                base_url=base, session=http, headers=auth, excluded_checks=excluded
            )
            statuses[response.status_code] += 1
            sent += 1

        check()
    return sent


@pytest.mark.parametrize("token", [None, TOKEN], ids=["open", "token"])
def test_every_route_fuzzed_from_the_openapi_document_never_answers_5xx(
    indexed: Indexed, caplog: pytest.LogCaptureFixture, token: str | None
) -> None:
    """Open, and guarded by a token: then the fuzzer sends the right token (so valid
    requests get past it) and also checks that a missing or made-up one gets a 401."""
    caplog.set_level(logging.INFO)
    statuses: Counter[int] = Counter()
    per_operation: Counter[str] = Counter()
    auth = {"Authorization": f"Bearer {token}"} if token else None
    with served_in_thread(indexed.path, token) as base, requests.Session() as http:
        # the document as served; from_dict, as from_url leaves the document's own path out
        document = http.get(f"{base}/openapi.json", headers=auth, timeout=30).json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [r.ok() for r in schema.get_all_operations() if isinstance(r, Ok)]
        assert len(operations) == 28, [o.label for o in operations]  # 14 paths, GET + HEAD
        for operation in operations:
            per_operation[operation.label] = fuzz(operation, base, http, auth, statuses)
    assert not [s for s in statuses if s >= 500], statuses
    assert sum(statuses.values()) >= min(300, 20 * EXAMPLES), statuses
    assert all(per_operation.values()) and len(per_operation) == 28, per_operation
    assert statuses[200] and statuses[400] and statuses[404], statuses
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == [], [(r.name, r.getMessage()) for r in loud]
