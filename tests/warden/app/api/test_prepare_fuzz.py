"""A property fuzz of the prepare routes from the served OpenAPI document: schemathesis
generates bodies from each operation's request schema (valid ones, and invalid ones in
negative mode) and POSTs them over real HTTP to the app asking a real anvil. No answer
may be a 5xx, each must be documented for its route (status, content type, body schema),
invalid bodies must be refused, and nothing is logged as an ERROR.

Its one exclusion: "schema-valid data is accepted", since a body of the documented shape
is still refused when the chain says no (an owner that is not the wallet's, a token the
registry does not trust, a balance too small): that is what these routes are for.
`WARDEN_API_FUZZ_EXAMPLES` sets the examples per operation and mode (default 15)."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, CheckFunction, GenerationMode
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import negative_data_rejection, positive_data_acceptance

from tests._chain import Chain
from tests.conftest import Stack
from tests.indexer._support import config, index_to_head
from tests.warden.app.api.test_fuzz import EXAMPLES, TOKEN, served_in_thread
from warden.app.api.prepare_chain import Preparation


@pytest.mark.parametrize("token", [None, TOKEN], ids=["open", "token"])
def test_prepare_routes_fuzzed_from_the_openapi_document_never_answer_5xx(
    fresh_chain: Chain, stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture,
    token: str | None,
) -> None:  # fmt: skip
    caplog.set_level(logging.INFO)
    db = tmp_path / "w.sqlite"
    asyncio.run(index_to_head(fresh_chain.anvil.url, db, config(stack.factory.address)))
    prepare = Preparation((fresh_chain.anvil.url,), stack.factory.address, 31337)
    statuses: Counter[int] = Counter()
    per_operation: Counter[str] = Counter()
    auth = {"Authorization": f"Bearer {token}"} if token else None
    excluded: list[CheckFunction] = [positive_data_acceptance]
    if auth is not None:  # as in test_fuzz: the right token over whatever was broken
        excluded.append(negative_data_rejection)
    with served_in_thread(db, token, prepare) as base, requests.Session() as http:
        document = http.get(f"{base}/openapi.json", headers=auth, timeout=30).json()
        schema = schemathesis.openapi.from_dict(document)
        operations = [
            r.ok() for r in schema.get_all_operations()
            if isinstance(r, Ok) and r.ok().method.upper() == "POST"
        ]  # fmt: skip
        assert len(operations) == 6, [o.label for o in operations]
        for operation in operations:
            label = operation.label
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(
                    max_examples=EXAMPLES, deadline=None, database=None,
                    phases=[Phase.generate], suppress_health_check=list(HealthCheck),
                )  # fmt: skip
                @given(case=operation.as_strategy(generation_mode=mode))
                def check(case: Case[Any]) -> None:
                    response = case.call_and_validate(
                        base_url=base, session=http, headers=auth, excluded_checks=excluded
                    )
                    statuses[response.status_code] += 1
                    per_operation[label] += 1  # noqa: B023 - called before the loop moves on

                check()
    assert not [s for s in statuses if s >= 500], statuses
    assert len(per_operation) == 6 and all(per_operation.values()), per_operation
    assert statuses[400], statuses
    loud = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert loud == [], [(r.name, r.getMessage()) for r in loud]
