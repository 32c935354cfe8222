"""The aiohttp application: the route table wired to the router, JSON errors, optional
bearer authentication, and a read-only database of its own for its lifetime (SQLite or
PostgreSQL, through the `database` seam).

    app = create_app("warden.sqlite", live, token=os.environ.get("WARDEN_API_TOKEN"))
    check_binding(host, token)          # before web.TCPSite(runner, host, port)
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiosqlite
import orjson
from aiohttp import web
from pydantic import BaseModel

from database import Database, ReadersBusy, open_database
from database.sqlite import SqliteDatabase
from warden.app.api.cache import Flights, ResponseCache
from warden.app.api.errors import (
    ApiError,
    BadRequest,
    Busy,
    InsecureBinding,
    NotFound,
    Unauthorized,
)
from warden.app.api.gate import DEFAULT_READS, ReadGate, ReadLimits
from warden.app.api.live import LiveState
from warden.app.api.metrics import CONTENT_TYPE, Metrics
from warden.app.api.openapi import build_openapi
from warden.app.api.params import parse_path, parse_query, split_query
from warden.app.api.prepare import Prepare, prepare_routes
from warden.app.api.prepare_chain import Preparation
from warden.app.api.prepare_models import BODY_SECONDS, MAX_BODY, parse_body
from warden.app.api.reader import ApiReader
from warden.app.api.routes import Context, Route, build_routes
from warden.app.api.server import DEFAULT_LIMITS, HttpLimits, runner_options
from warden.app.api.stream import DEFAULT_STREAMS, EventStream, Streams, StreamSettings
from warden.app.console import add_console, console_paths

API_VERSION = "1.0.0"
log = logging.getLogger("warden.api")

CONTEXT = web.AppKey("context", Context)
ROUTES = web.AppKey("routes", tuple)
STREAMS = web.AppKey("streams", Streams)
CACHE = web.AppKey("cache", ResponseCache)
FLIGHTS = web.AppKey("flights", Flights[bytes])

Source = str | Path | aiosqlite.Connection


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # any other host name may resolve anywhere


def check_binding(host: str, token: str | None) -> None:
    """Refuse to serve beyond loopback without a token: the API shows every session."""
    if token or is_loopback(host):
        return
    raise InsecureBinding(
        f"the HTTP API would listen on {host or 'every interface'} without a bearer token: "
        "bind it to 127.0.0.1 or set a token"
    )


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        if request.method in ("GET", "HEAD") and request.body_exists:  # nothing reads one
            raise BadRequest(f"{request.method} {request.path} takes no request body")
        return await handler(request)
    except ApiError as exc:
        response = _json(exc.body(), exc.status)
        if isinstance(exc, Unauthorized):
            response.headers["WWW-Authenticate"] = 'Bearer realm="warden"'
        if isinstance(exc, Busy):
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except ReadersBusy as exc:  # a read connection did not come free in time
        busy = Busy(f"the API is busy: {exc}; retry in a moment")
        response = _json(busy.body(), busy.status)
        response.headers["Retry-After"] = str(busy.retry_after)
        return response
    except web.HTTPException as exc:  # unrouted path, wrong method
        if exc.status == 404:
            return _json(NotFound(f"no route {request.path}").body(), 404)
        code = exc.reason.lower().replace(" ", "_")
        message = f"{request.method} {request.path}: {exc.reason}"
        body = {"error": {"status": exc.status, "code": code, "message": message}}
        response = _json(body, exc.status)
        if "Allow" in exc.headers:  # 405: which methods the route takes
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("API request %s failed", request.path_qs)
        body = {"error": {"status": 500, "code": "internal", "message": "internal error"}}
        return _json(body, 500)


def _auth(token: str, public: frozenset[str]) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def auth(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        resource = request.match_info.route.resource
        path = resource.canonical if resource is not None else request.path
        if path not in public:
            given = request.headers.get("Authorization", "").encode()
            if not hmac.compare_digest(given, expected):
                raise Unauthorized("send Authorization: Bearer <token>")
        return await handler(request)

    return auth


async def _read_body(request: web.Request) -> bytes:
    """The body, in at most `BODY_SECONDS`: a client trickling it (slowloris, past the
    request-head timeout) holds a handler no longer."""
    try:
        async with asyncio.timeout(BODY_SECONDS):
            return await request.read()
    except TimeoutError:
        raise BadRequest(f"the body did not arrive within {BODY_SECONDS:g} s") from None


def _view(route: Route) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def view(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CONTEXT]
        cache = request.app[CACHE]
        # A kept answer first: it exists only for a URL that was parsed and answered 200
        # at this version, so neither the parsing nor a read connection is needed again.
        version = await ctx.reader.db.data_version() if route.cached else None
        key = str(request.rel_url)
        if version is not None:
            kept = cache.get(key, version)
            if kept is not None:
                return web.Response(body=kept, content_type="application/json")
        path = (
            None if route.path_params is None else parse_path(request.match_info, route.path_params)
        )
        query: Any = parse_query(split_query(request.rel_url.raw_query_string), route.query)
        if route.body is not None:
            if request.content_type != "application/json":
                raise BadRequest(f"send the body as JSON with Content-Type: application/json, "
                                 f"not {request.content_type or 'none'}")  # fmt: skip
            query = parse_body(await _read_body(request), route.body)
        if version is not None:
            body = await _computed(request, route, ctx, (key, version), path, query)
            return web.Response(body=body, content_type="application/json")
        reply = await route.handler(ctx, path, query)
        if isinstance(reply.body, EventStream):
            return await request.app[STREAMS].serve(
                request, ctx.reader.events, ctx.live.events, reply.body
            )
        if isinstance(reply.body, str):
            return web.Response(
                text=reply.body, status=reply.status, headers={"Content-Type": CONTENT_TYPE}
            )
        if isinstance(reply.body, BaseModel):
            return web.Response(
                body=reply.body.model_dump_json(), status=reply.status,
                content_type="application/json",
            )  # fmt: skip
        return _json(reply.body, reply.status)

    return view


async def _computed(
    request: web.Request, route: Route, ctx: Context, flight: tuple[str, int], path: Any,
    query: Any,
) -> bytes:  # fmt: skip
    """A cached route's answer at the version in `flight`, computed once however many ask
    it meanwhile (`Flights`), and kept. A cached route answers 200 or raises."""
    cache, flights = request.app[CACHE], request.app[FLIGHTS]
    running = flights.running(flight)
    if running is not None:
        shared = await flights.join(running)
        if shared is not None:
            return shared
    else:
        flights.lead(flight)
    body = None
    try:
        reply = await route.handler(ctx, path, query)
        if reply.status != 200 or not isinstance(reply.body, BaseModel):
            raise TypeError(f"{route.path}: a cached route answered {reply.status}")
        body = reply.body.model_dump_json().encode()
        cache.put(*flight, body)
        return body
    finally:
        if running is None:
            flights.land(flight, body)


async def _open_read_only(db: Source, reads: ReadLimits) -> tuple[Database, bool]:
    """A read-only database of our own, `reads.connections` connections reading at once
    (and whether it is ours to close). Given the writer's SQLite connection, open the same
    file again: reads must not run inside, or wait behind, the writer's transactions. An
    in-memory database can only be shared."""
    if isinstance(db, aiosqlite.Connection):
        async with db.execute("PRAGMA database_list") as cur:
            files = {name: file for _, name, file in await cur.fetchall()}
        if not files.get("main"):
            return SqliteDatabase(db, ""), False
        target: str | Path = files["main"]
    else:
        target = db
    # the gate lets no more requests read than there are connections: a borrower that
    # still waits (an event stream's poll) waits as long as a request may
    opened = await open_database(target, read_only=True, readers=reads.connections, wait=reads.wait)
    return opened, True


def create_app(
    db: Source,
    live: LiveState,
    *,
    token: str | None = None,
    streams: StreamSettings = DEFAULT_STREAMS,
    prepare: Preparation | None = None,
    reads: ReadLimits = DEFAULT_READS,
) -> web.Application:
    """The API over `db` (a SQLite file path, a postgresql:// URL, or an open SQLite
    connection) and the daemon's `live` state. With `token`, every route but /health
    needs it. `streams`: keepalive, poll and limit of /stream. With `prepare`, the
    `POST /prepare/...` routes too, asking its node. `reads`: read connections, and how
    many requests may wait for one and how long (then 503)."""
    routes = build_routes() + (prepare_routes() if prepare is not None else ())
    # The console's page and files hold no data (the page reads the API with the token
    # the operator types in), so they load without one. They are not API routes: not
    # in the route table nor the OpenAPI document.
    public = frozenset({r.path for r in routes if r.public} | console_paths())
    middlewares = [_errors] if not token else [_errors, _auth(token, public)]
    # Only the /prepare routes read a body (a GET with one is refused before the
    # handler): any other body aiohttp would buffer is capped at one small read.
    limit = MAX_BODY if prepare is not None else 1024
    app = web.Application(middlewares=middlewares, client_max_size=limit)
    app[ROUTES] = routes
    add_console(app)
    app[STREAMS] = Streams(streams)
    app[CACHE] = ResponseCache()
    app[FLIGHTS] = Flights[bytes]()
    # Open event streams end at the start of shutdown, before the runner waits for the
    # handlers in flight (they would otherwise hold it for its whole shutdown timeout).
    app.on_shutdown.append(app[STREAMS].shutdown)
    document = build_openapi(routes, version=API_VERSION, secured=bool(token))

    async def database(app: web.Application) -> AsyncIterator[None]:
        conn, own = await _open_read_only(db, reads)
        reader = ApiReader(conn, ReadGate(reads))
        # the node client of the /prepare routes: opened after the database, closed first
        client = prepare.client() if prepare is not None else None
        node = None
        if prepare is not None and client is not None:
            node = Prepare(prepare, client, asyncio.Semaphore(prepare.max_concurrent))
        app[CONTEXT] = Context(reader, live, Metrics(live), document, node)
        try:
            yield
        finally:
            try:
                if client is not None:
                    await client.close()
            finally:
                if own:
                    await conn.close()

    app.cleanup_ctx.append(database)
    for route in routes:
        if route.method == "POST":
            app.router.add_post(route.path, _view(route))
        else:
            app.router.add_get(route.path, _view(route), allow_head=True)  # HEAD: no body
    return app


@contextlib.asynccontextmanager
async def serve(
    app: web.Application,
    host: str,
    port: int,
    *,
    token: str | None,
    limits: HttpLimits = DEFAULT_LIMITS,
) -> AsyncIterator[web.AppRunner]:
    """Run `app` on host:port until the block exits, with `limits` on every connection."""
    check_binding(host, token)
    runner = web.AppRunner(app, **runner_options(limits))
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        yield runner
    finally:
        await runner.cleanup()
