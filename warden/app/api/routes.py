"""The route table — the one list both the router and the OpenAPI document are built
from — and the handlers. A handler gets its parameters already validated against the
route's declarations and returns a `Reply`; it never reads the raw query."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from chain import event_specs
from contracts import SESSION_STATUSES
from warden.app.api.errors import NotFound
from warden.app.api.live import LiveState
from warden.app.api.metrics import render_metrics
from warden.app.api.params import Param, encode_cursor
from warden.app.api.queries import (
    INTENT_ACTIONS,
    INTENT_REASONS,
    INTENT_STATES,
    ApiReader,
    IntentFilter,
    Page,
    SessionFilter,
)


@dataclass(frozen=True)
class Context:
    reader: ApiReader
    live: LiveState
    openapi: dict[str, Any]  # the document of these routes, served as /openapi.json


@dataclass(frozen=True)
class Reply:
    body: Any
    status: int = 200
    text: bool = False  # body is Prometheus text, not JSON


Handler = Callable[[Context, dict[str, Any]], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    path: str
    handler: Handler
    summary: str
    response: str  # component schema of the 200 body; "text" for /metrics
    params: tuple[Param, ...] = ()
    public: bool = False  # answered without the bearer token
    errors: tuple[int, ...] = field(default=())  # besides 401 and 500
    description: str = ""


def _limit() -> Param:
    return Param("limit", "limit", "page size")


def _cursor(scope: str) -> Param:
    return Param("cursor", "cursor", "`next_cursor` of the previous page", scope=scope)


SESSION_FILTERS = (
    Param("status", "enum", "session status", choices=SESSION_STATUSES),
    Param("policy", "string", "policy name as in the creation event (may be empty)"),
)
WALLET = Param("wallet", "address", "session wallet address (any case)", where="path")


def _page_body(page: Page, scope: str) -> dict[str, Any]:
    cursor = None if page.next_key is None else encode_cursor(scope, page.next_key)
    return {"items": page.items, "next_cursor": cursor}


async def health(ctx: Context, p: dict[str, Any]) -> Reply:
    return Reply({"alive": True})


async def ready(ctx: Context, p: dict[str, Any]) -> Reply:
    live = ctx.live
    if live.caught_up:
        return Reply({"ready": True, "reason": None})
    where = f"indexed block {live.indexed_block} of head {live.head}"
    return Reply({"ready": False, "reason": f"catching up: {where}"}, status=503)


async def status(ctx: Context, p: dict[str, Any]) -> Reply:
    live = ctx.live
    async with ctx.reader.snapshot():
        stored = await ctx.reader.checkpoint()
        intents = await ctx.reader.intent_counts()
        sessions = await ctx.reader.session_counts()
    indexed = live.indexed_block if live.indexed_block is not None else stored
    lag = None if live.head is None or indexed is None else max(0, live.head - indexed)
    balance = None if live.relayer_balance is None else str(live.relayer_balance)
    return Reply({
        "chain_head": live.head, "indexed_block": indexed, "safe_block": live.safe_block,
        "lag_blocks": lag, "caught_up": live.caught_up,
        "relayer": {"address": live.relayer_address, "balance": balance},
        "rules_version": live.rules_version, "intents": intents, "sessions": sessions,
    })  # fmt: skip


async def sessions(ctx: Context, p: dict[str, Any]) -> Reply:
    f = SessionFilter(owner=p.get("owner"), status=p.get("status"), policy=p.get("policy"))
    async with ctx.reader.snapshot():
        page = await ctx.reader.sessions(f, p.get("cursor"), p["limit"])
    return Reply(_page_body(page, "sessions"))


async def owner_sessions(ctx: Context, p: dict[str, Any]) -> Reply:
    return await sessions(ctx, {**p, "owner": p["address"]})


async def session(ctx: Context, p: dict[str, Any]) -> Reply:
    async with ctx.reader.snapshot():
        found = await ctx.reader.session(p["wallet"])
        if found is None:
            raise NotFound(f"no session with wallet {p['wallet']}")
        intents = await ctx.reader.intents_of(p["wallet"])
    return Reply({"session": found, "intents": intents})


async def session_events(ctx: Context, p: dict[str, Any]) -> Reply:
    async with ctx.reader.snapshot():
        if await ctx.reader.session(p["wallet"]) is None:
            raise NotFound(f"no session with wallet {p['wallet']}")
        page = await ctx.reader.events(p["wallet"], p.get("name"), p.get("cursor"), p["limit"])
    return Reply(_page_body(page, "events"))


async def intents(ctx: Context, p: dict[str, Any]) -> Reply:
    f = IntentFilter(**{k: p.get(k) for k in ("wallet", "state", "rule", "action", "reason")})
    async with ctx.reader.snapshot():
        page = await ctx.reader.intents(f, p.get("cursor"), p["limit"])
    return Reply(_page_body(page, "intents"))


async def stats(ctx: Context, p: dict[str, Any]) -> Reply:
    async with ctx.reader.snapshot():
        return Reply(await ctx.reader.stats())


async def metrics(ctx: Context, p: dict[str, Any]) -> Reply:
    async with ctx.reader.snapshot():
        text = await render_metrics(ctx.reader, ctx.live)
    return Reply(text, text=True)


async def openapi(ctx: Context, p: dict[str, Any]) -> Reply:
    return Reply(ctx.openapi)


def _event_names() -> tuple[str, ...]:
    return tuple(sorted({spec.name for spec in event_specs().values()}))


def build_routes() -> tuple[Route, ...]:
    return (
        Route("/health", health, "Liveness: the process answers", "Health", public=True),
        Route("/ready", ready, "Readiness: 503 until the indexer has caught up", "Ready",
              errors=(503,)),
        Route("/status", status, "Chain head, indexed and safe block, lag, relayer, rules "
              "version, intents by state", "Status"),
        Route("/sessions", sessions, "Sessions in creation order, filtered", "SessionPage",
              params=(Param("owner", "address", "owner address (any case)"), *SESSION_FILTERS,
                      _cursor("sessions"), _limit()), errors=(400,)),
        Route("/sessions/{wallet}", session, "One session with its intents (rule firings), "
              "their jobs, transactions and guard refusals", "SessionDetail",
              params=(WALLET,), errors=(400, 404)),
        Route("/sessions/{wallet}/events", session_events, "A session's events in chain "
              "order", "EventPage",
              params=(WALLET, Param("name", "enum", "event name", choices=_event_names()),
                      _cursor("events"), _limit()), errors=(400, 404)),
        Route("/owners/{address}/sessions", owner_sessions, "One owner's sessions in "
              "creation order", "SessionPage",
              params=(Param("address", "address", "owner address (any case)", where="path"),
                      *SESSION_FILTERS, _cursor("sessions"), _limit()), errors=(400,)),
        Route("/intents", intents, "Intents in creation order, filtered", "IntentPage",
              params=(Param("wallet", "address", "session wallet (any case)"),
                      Param("state", "enum", "intent state", choices=INTENT_STATES),
                      Param("rule", "string", "rule name"),
                      Param("action", "enum", "action", choices=INTENT_ACTIONS),
                      Param("reason", "enum", "close reason", choices=INTENT_REASONS),
                      _cursor("intents"), _limit()), errors=(400,)),
        Route("/stats", stats, "Totals over all sessions: volume, fees, hit rates, "
              "average duration", "Stats"),
        Route("/metrics", metrics, "Prometheus text exposition", "text"),
        Route("/openapi.json", openapi, "This OpenAPI 3.1 document", "OpenApiDocument"),
    )  # fmt: skip
