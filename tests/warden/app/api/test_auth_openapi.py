"""Bearer authentication, the loopback rule, and the OpenAPI document kept true to the
routes and to what they answer."""

from __future__ import annotations

import socket

import aiohttp
import pytest

from tests.warden.app.api._schema import (
    check_response,
    errors,
    response_schema,
    structural_problems,
)
from tests.warden.app.api.conftest import Api, Indexed, serve_api
from warden.app.api import InsecureBinding, LiveState, check_binding, create_app, serve
from warden.app.console import console_paths

TOKEN = "s3cret-token"


async def test_token_guards_every_route_but_health(indexed: Indexed) -> None:
    async with serve_api(indexed.path, LiveState(), token=TOKEN) as api:
        doc = await api.ok("/openapi.json", token=TOKEN)
        assert await api.ok("/health") == {"alive": True}
        for path in doc["paths"]:
            if path == "/health":
                continue
            concrete = path.replace("{wallet}", indexed.wallets[0]).replace(
                "{address}", indexed.wallets[0]
            )
            for token in (None, "wrong", TOKEN + "x", TOKEN[:-1]):
                status, body = await api.get(concrete, token=token)
                assert status == 401, (path, token, status)
                assert body["error"]["code"] == "unauthorized"
                check_response(doc, path, 401, body)
            status, _ = await api.get(concrete, token=TOKEN)
            assert status in (200, 503), (path, status)  # /ready: not caught up
        async with api.http.get(
            api.server.make_url("/status"), headers={"Authorization": TOKEN}
        ) as r:  # the scheme is part of it
            assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")


async def test_without_a_token_everything_is_open(api: Api) -> None:
    assert (await api.get("/status"))[0] == 200
    assert (await api.get("/status", token="anything"))[0] == 200


async def test_the_document_says_401_exactly_when_a_token_guards_the_route(
    indexed: Indexed,
) -> None:
    async with serve_api(indexed.path, LiveState()) as api:
        open_doc = await api.ok("/openapi.json")
    async with serve_api(indexed.path, LiveState(), token=TOKEN) as api:
        guarded_doc = await api.ok("/openapi.json", token=TOKEN)
    assert "security" not in open_doc and "securitySchemes" not in open_doc["components"]
    assert guarded_doc["security"] == [{"bearer": []}]
    for path, item in open_doc["paths"].items():
        for method, op in item.items():
            assert "401" not in op["responses"], (path, method)
            guarded = guarded_doc["paths"][path][method]["responses"]
            assert ("401" in guarded) == (path != "/health"), (path, method)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost"])
def test_loopback_needs_no_token(host: str) -> None:
    check_binding(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "", "10.0.0.5", "api.example.com"])
def test_beyond_loopback_a_token_is_required(host: str) -> None:
    with pytest.raises(InsecureBinding, match="without a bearer token"):
        check_binding(host, None)
    with pytest.raises(InsecureBinding):
        check_binding(host, "")
    check_binding(host, TOKEN)


async def test_openapi_document_is_valid_and_matches_the_routes(api: Api, indexed: Indexed) -> None:
    doc = await api.ok("/openapi.json")
    assert structural_problems(doc) == []
    routed = {
        r.resource.canonical
        for r in create_app(indexed.path, LiveState()).router.routes()
        if r.resource is not None and r.method == "GET"
    } - console_paths()  # the console's page and files: not API routes
    assert routed == set(doc["paths"]), routed ^ set(doc["paths"])
    required = {
        "/health", "/ready", "/status", "/sessions", "/sessions/{wallet}",
        "/sessions/{wallet}/events", "/owners/{address}/sessions", "/intents", "/stats",
        "/metrics", "/openapi.json", "/stream", "/notifications", "/activity",
    }  # fmt: skip
    assert required == routed
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert all("security" not in doc["paths"][p]["get"] for p in routed - {"/health"})
    check_response(doc, "/openapi.json", 200, doc)
    try:  # the reference validator, when the environment has it
        from openapi_spec_validator import validate  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return
    validate(doc)


async def test_every_route_answers_its_documented_schema(api: Api, indexed: Indexed) -> None:
    doc = await api.ok("/openapi.json")
    wallet = indexed.wallets[0]
    for template, item in doc["paths"].items():
        path = template.replace("{wallet}", wallet).replace("{address}", wallet)
        status, body = await api.get(path)
        assert str(status) in item["get"]["responses"], (path, status)
        if template == "/metrics":
            assert status == 200 and isinstance(body, str) and body.startswith("# HELP")
            continue
        if template == "/stream":  # its first line (the helper does not wait for events)
            assert status == 200 and isinstance(body, str) and body.startswith("retry: ")
            continue
        check_response(doc, template, status, body)


async def test_other_methods_are_a_documented_405_with_allow(api: Api, indexed: Indexed) -> None:
    doc = await api.ok("/openapi.json")
    wallet = indexed.wallets[0]
    for template, item in doc["paths"].items():
        assert set(item) == {"get", "head"}, template
        url = api.server.make_url(template.replace("{wallet}", wallet).replace("{address}", wallet))
        for method in ("POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"):
            async with api.http.request(method, url) as r:
                assert r.status == 405, (template, method)
                assert set(r.headers["Allow"].split(",")) == {"GET", "HEAD"}, (template, method)
                check_response(doc, template, 405, await r.json())


async def test_head_answers_what_get_answers_without_a_body(api: Api, indexed: Indexed) -> None:
    doc = await api.ok("/openapi.json")
    wallet = indexed.wallets[0]
    paths = [t.replace("{wallet}", wallet).replace("{address}", wallet) for t in doc["paths"]]
    paths = [p + "?follow=false" if p == "/stream" else p for p in paths]  # a body that ends
    paths += ["/sessions/0x12", "/sessions?limit=0", "/nowhere", "/sessions/" + "0x" + "ab" * 20]
    for path in paths:
        async with api.http.get(api.server.make_url(path)) as got:
            body = await got.read()
        async with api.http.head(api.server.make_url(path)) as head:
            assert head.status == got.status, path
            assert head.headers["Content-Type"] == got.headers["Content-Type"], path
            assert await head.read() == b"", path
        assert body, path
        template = next((t for t in doc["paths"] if _fits(t, path.split("?")[0])), None)
        assert template is not None or head.status == 404, path
        assert (
            template is None or str(head.status) in doc["paths"][template]["head"]["responses"]
        ), (path, head.status)


def _fits(template: str, path: str) -> bool:
    a, b = template.split("/"), path.split("/")
    return len(a) == len(b) and all(x == y or x.startswith("{") for x, y in zip(a, b, strict=True))


async def test_the_schema_check_can_fail(api: Api, indexed: Indexed) -> None:
    """The checker is what holds bodies to the document: a body off by one detail fails."""
    doc = await api.ok("/openapi.json")
    body = await api.ok(f"/sessions/{indexed.wallets[0]}")
    assert errors(doc, response_schema(doc, "/sessions/{wallet}", 200), body) == []
    session = body["session"]
    broken = [
        {**session, "balance": int(session["balance"])},  # an amount as a number
        {**session, "balance": "-1"},
        {**session, "closed_at": "never"},
        {**session, "surprise": 1},
        {k: v for k, v in session.items() if k != "owner"},
        {**session, "status": "open"},
        {**session, "wallet": None},
    ]
    for bad in broken:
        problems = errors(doc, response_schema(doc, "/sessions/{wallet}", 200),
                          {**body, "session": bad})  # fmt: skip
        assert problems, bad
    status = await api.ok("/status")
    assert errors(doc, response_schema(doc, "/status", 200), status) == []
    del status["intents"]["pending"]
    assert errors(doc, response_schema(doc, "/status", 200), status)


async def test_serve_binds_loopback_and_refuses_open_binding(indexed: Indexed) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(indexed.path, LiveState())
    async with (
        serve(app, "127.0.0.1", port, token=None),
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/sessions?limit=1") as r,
    ):
        assert r.status == 200 and len((await r.json())["items"]) == 1
    with pytest.raises(InsecureBinding):
        async with serve(create_app(indexed.path, LiveState()), "0.0.0.0", port, token=None):
            raise AssertionError("served on every interface without a token")
