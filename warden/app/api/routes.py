"""The route table — the one list both the router and the OpenAPI document are built
from — and the handlers. A handler gets its path and query parameters already validated
into their models and returns a `Reply` holding a response model; it never reads the raw
request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from executor.history import IntentFilter
from indexer.reads import Page, SessionFilter, page_of
from notify import EventFilter
from warden.app.api import models as m
from warden.app.api.errors import NotFound
from warden.app.api.live import LiveState
from warden.app.api.metrics import Metrics
from warden.app.api.params import (
    ActivityQuery,
    EventsQuery,
    IntentsQuery,
    NoQuery,
    NotificationsQuery,
    OwnerPath,
    OwnerSessionsQuery,
    Params,
    SessionsQuery,
    StreamQuery,
    WalletPath,
    encode_cursor,
)
from warden.app.api.reader import ApiReader
from warden.app.api.stream import EventStream


@dataclass(frozen=True)
class Context:
    reader: ApiReader
    live: LiveState
    metrics: Metrics
    openapi: dict[str, Any]  # the document of these routes, served as /openapi.json
    prepare: Any = None  # prepare.Prepare: the node the /prepare routes ask; None: no routes


@dataclass(frozen=True)
class Reply:
    body: BaseModel | dict[str, Any] | str | EventStream  # a str is Prometheus text
    status: int = 200


# (context, path parameters, query parameters, or for a POST route its body)
Handler = Callable[[Context, Any, Any], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    path: str
    handler: Handler
    summary: str
    response: type[BaseModel] | None  # the 200 body; None for Prometheus text
    query: type[Params] = NoQuery
    path_params: type[Params] | None = None
    public: bool = False  # answered without the bearer token
    errors: tuple[int, ...] = ()  # besides 400, 401, 405 and 500, which any route may answer
    stream: bool = False  # answers server-sent events (text/event-stream), not one body
    # answered from the database alone (no live figures): kept until the database changes
    cached: bool = False
    method: str = "GET"  # GET (with HEAD) or POST
    body: type[BaseModel] | None = None  # a POST route's request body, handed to the handler


def _cursor(page: Page[Any], scope: str) -> str | None:
    return None if page.next_key is None else encode_cursor(scope, page.next_key)


async def health(ctx: Context, path: None, q: NoQuery) -> Reply:
    return Reply(m.Health(alive=True))


async def ready(ctx: Context, path: None, q: NoQuery) -> Reply:
    live = ctx.live
    lead = live.leadership
    if lead is not None and lead.role == "standby":
        # A standby serves reads from the shared database the leader keeps current; with
        # no other replica leading (a first start, all but this one down), nothing keeps
        # it current: not ready until one leads (this one, within a third of the TTL).
        leader = lead.leader_seen
        if leader and leader != lead.identity:
            return Reply(m.Ready(ready=True, reason=f"standby: {leader} leads"))
        return Reply(m.Ready(ready=False, reason="standby: no other replica leads yet"), status=503)
    down = live.over_budget()
    if down is not None:
        return Reply(m.Ready(ready=False, reason=f"node failing: {down}"), status=503)
    if live.caught_up:
        return Reply(m.Ready(ready=True, reason=None))
    where = f"indexed block {live.indexed_block} of head {live.head}"
    return Reply(m.Ready(ready=False, reason=f"catching up: {where}"), status=503)


async def status(ctx: Context, path: None, q: NoQuery) -> Reply:
    live = ctx.live
    figures = await ctx.reader.status_figures()
    stored, intents, sessions = figures.checkpoint, figures.intents, figures.sessions
    indexed = live.indexed_block if live.indexed_block is not None else stored
    lag = None if live.head is None or indexed is None else max(0, live.head - indexed)
    return Reply(m.Status(
        chain_head=live.head, indexed_block=indexed, safe_block=live.safe_block,
        lag_blocks=lag, caught_up=live.caught_up,
        relayer=m.Relayer(address=live.relayer_address, balance=live.relayer_balance),
        rules_version=live.rules_version, intents=intents, sessions=sessions,
        protection=m.Protection.of(live.protection),
        leadership=m.Leadership.of(live.leadership),
        token_decimals=dict(live.token_decimals),
    ))  # fmt: skip


async def _sessions(ctx: Context, q: OwnerSessionsQuery, owner: str | None) -> Reply:
    f = SessionFilter(owner=owner, status=q.status, policy=q.policy)
    async with ctx.reader.snapshot():
        page = await ctx.reader.sessions.sessions(f, q.cursor, q.limit)
    items = [m.Session.model_validate(s) for s in page.items]
    return Reply(m.SessionPage(items=items, next_cursor=_cursor(page, "sessions")))


async def sessions(ctx: Context, path: None, q: SessionsQuery) -> Reply:
    return await _sessions(ctx, q, q.owner)


async def owner_sessions(ctx: Context, path: OwnerPath, q: OwnerSessionsQuery) -> Reply:
    return await _sessions(ctx, q, path.address)


async def session(ctx: Context, path: WalletPath, q: NoQuery) -> Reply:
    reader = ctx.reader
    async with reader.snapshot():
        found = await reader.sessions.session(path.wallet)
        if found is None:
            raise NotFound(f"no session with wallet {path.wallet}")
        history = await reader.outbox.history(path.wallet)
    return Reply(m.SessionDetail(
        session=m.Session.model_validate(found),
        intents=[m.IntentDetail.of(h) for h in history],
    ))  # fmt: skip


async def session_events(ctx: Context, path: WalletPath, q: EventsQuery) -> Reply:
    reader = ctx.reader
    async with reader.snapshot():
        if await reader.sessions.session(path.wallet) is None:
            raise NotFound(f"no session with wallet {path.wallet}")
        page = await reader.sessions.events(path.wallet, q.name, q.cursor, q.limit)
    items = [m.Event.model_validate(e) for e in page.items]
    return Reply(m.EventPage(items=items, next_cursor=_cursor(page, "events")))


async def intents(ctx: Context, path: None, q: IntentsQuery) -> Reply:
    f = IntentFilter(wallet=q.wallet, state=q.state, rule=q.rule, action=q.action, reason=q.reason)
    async with ctx.reader.snapshot():
        page = await ctx.reader.outbox.intents(f, q.cursor, q.limit)
    items = [m.Intent.model_validate(i) for i in page.items]
    return Reply(m.IntentPage(items=items, next_cursor=_cursor(page, "intents")))


async def notifications(ctx: Context, path: None, q: NotificationsQuery) -> Reply:
    async with ctx.reader.snapshot():
        rows = await ctx.reader.deliveries.page(
            -1 if q.cursor is None else q.cursor, q.limit, state=q.state, channel=q.channel,
            kind=q.kind,
        )  # fmt: skip
    page = page_of(rows, q.limit, lambda d: d.id)
    items = [
        m.Notification(
            id=d.id, channel=d.channel, state=d.state, attempts=d.attempts,  # type: ignore[arg-type]
            next_attempt_ms=d.next_ms, last_error=d.last_error, created_ms=d.created_ms,
            updated_ms=d.updated_ms, delivered_ms=d.delivered_ms,
            event_cursor=str(d.event_row), event_id=d.event_id, kind=d.kind, wallet=d.wallet,
        )
        for d in page.items
    ]  # fmt: skip
    return Reply(m.NotificationPage(items=items, next_cursor=_cursor(page, "notifications")))


async def stats(ctx: Context, path: None, q: NoQuery) -> Reply:
    async with ctx.reader.snapshot():
        totals = await ctx.reader.sessions.totals()
    return Reply(m.Stats.of(totals))


async def activity(ctx: Context, path: None, q: ActivityQuery) -> Reply:
    async with ctx.reader.snapshot():
        closes = await ctx.reader.sessions.recent_closes(q.limit)
        reactions = await ctx.reader.outbox.recent_reactions(q.limit)
    return Reply(m.Activity(
        closes=[m.Close.model_validate(c) for c in closes],
        reactions=[m.Reaction.model_validate(r) for r in reactions],
    ))  # fmt: skip


async def metrics(ctx: Context, path: None, q: NoQuery) -> Reply:
    async with ctx.reader.snapshot():
        figures = await ctx.reader.figures()
    return Reply(ctx.metrics.render(figures))


async def stream(ctx: Context, path: None, q: StreamQuery) -> Reply:
    return Reply(EventStream(q.after, EventFilter(kinds=q.kinds or (), wallet=q.wallet), q.follow))


async def openapi(ctx: Context, path: None, q: NoQuery) -> Reply:
    return Reply(ctx.openapi)


def build_routes() -> tuple[Route, ...]:
    return (
        Route("/health", health, "Liveness: the process answers", m.Health, public=True),
        Route("/ready", ready, "Readiness: 503 until the indexer has caught up, or while "
              "the node has been failing for longer than chain.max_failure_seconds", m.Ready,
              errors=(503,)),
        Route("/status", status, "Chain head, indexed and safe block, lag, relayer, rules "
              "version, intents by state", m.Status, errors=(503,)),
        Route("/sessions", sessions, "Sessions in creation order, filtered", m.SessionPage,
              query=SessionsQuery, errors=(503,), cached=True),
        Route("/sessions/{wallet}", session, "One session with its intents (rule firings), "
              "their jobs, transactions and guard refusals", m.SessionDetail,
              path_params=WalletPath, errors=(404, 503), cached=True),
        Route("/sessions/{wallet}/events", session_events, "A session's events in chain "
              "order", m.EventPage, query=EventsQuery, path_params=WalletPath,
              errors=(404, 503), cached=True),
        Route("/owners/{address}/sessions", owner_sessions, "One owner's sessions in "
              "creation order", m.SessionPage, query=OwnerSessionsQuery,
              path_params=OwnerPath, errors=(503,), cached=True),
        Route("/intents", intents, "Intents in creation order, filtered", m.IntentPage,
              query=IntentsQuery, errors=(503,), cached=True),
        Route("/notifications", notifications, "Notification deliveries (one per event and "
              "channel) in order, filtered: pending, delivered or dead (re-drive: `warden "
              "notify redrive`)", m.NotificationPage, query=NotificationsQuery,
              errors=(503,), cached=True),
        Route("/stats", stats, "Totals over all sessions: volume, fees, hit rates, "
              "average duration", m.Stats, errors=(503,), cached=True),
        Route("/activity", activity, "The latest closes (chain time, reason) and reactions "
              "(intent stored to first transaction sent), oldest first", m.Activity,
              query=ActivityQuery, errors=(503,), cached=True),
        Route("/stream", stream, "Notification events as server-sent events (id: cursor, "
              "event: kind, data: JSON), resumable with Last-Event-ID", None,
              query=StreamQuery, errors=(503,), stream=True),
        Route("/metrics", metrics, "Prometheus text exposition", None, errors=(503,)),
        Route("/openapi.json", openapi, "This OpenAPI 3.1 document", m.OpenApiDocument),
    )  # fmt: skip
