"""The document with the prepare routes: valid, true to the router in both directions,
each POST operation with its request body schema (exactly the model's fields) and every
status it can answer; and the routes are absent, from both, without `prepare`."""

from __future__ import annotations

from pathlib import Path

from tests._chain import Chain
from tests.conftest import Stack
from tests.warden.app.api._prepare import CHAIN_ID, serve_prepare
from tests.warden.app.api._schema import resolve, structural_problems
from warden.app.api import LiveState, Preparation, create_app
from warden.app.api.prepare_models import CreateRequest
from warden.app.console import console_paths

PREPARE = {f"/prepare/{n}" for n in ("create", "top-up", "withdraw", "extend", "revoke", "close")}


async def test_the_document_describes_the_prepare_routes_as_routed(
    chain: Chain, stack: Stack, tmp_path: Path
) -> None:
    db = tmp_path / "w.sqlite"
    async with serve_prepare(db, chain, stack.factory.address, token="t" * 32) as api:
        doc = api.document
    assert structural_problems(doc) == []
    try:  # the reference validator, when the environment has it
        from openapi_spec_validator import validate  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pass
    else:
        validate(doc)
    prep = Preparation((chain.anvil.url,), stack.factory.address, CHAIN_ID)
    app = create_app(db, LiveState(), prepare=prep)
    routed = {
        (r.resource.canonical, r.method)
        for r in app.router.routes()
        if r.resource and r.resource.canonical not in console_paths()  # not API routes
    }
    documented = {(p, m.upper()) for p, item in doc["paths"].items() for m in item}
    assert routed == documented, routed ^ documented
    assert {p for p, m in routed if m == "POST"} == PREPARE
    for path in PREPARE:
        op = doc["paths"][path]["post"]
        assert set(op["responses"]) == {"200", "400", "401", "405", "409", "413", "500", "502",
                                        "503"}, path  # fmt: skip
        schema = resolve(doc, op["requestBody"]["content"]["application/json"]["schema"]["$ref"])
        assert schema["additionalProperties"] is False, path
        assert op["requestBody"]["required"] is True
    create = resolve(doc, "#/components/schemas/CreateRequest")
    assert set(create["properties"]) == set(CreateRequest.model_fields)
    assert set(create["required"]) == {"owner", "operator", "token", "deposit", "expiry",
                                       "budget", "max_fee_bps"}  # fmt: skip
    assert create["properties"]["deposit"]["type"] == "string"  # never a number
    for name in ("Prepared", "PreparedTransaction", "TokenInfo"):
        assert name in doc["components"]["schemas"]
    tx = resolve(doc, "#/components/schemas/PreparedTransaction")
    assert "from" in tx["properties"] and "from_" not in tx["properties"]


def test_without_prepare_there_are_no_prepare_routes(tmp_path: Path) -> None:
    app = create_app(tmp_path / "none.sqlite", LiveState())
    assert not [r for r in app.router.routes() if r.method == "POST"]
