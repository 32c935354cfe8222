"""The read-only HTTP API: sessions, events, intents, status, stats, metrics, OpenAPI.

    app = create_app(db_path, live, token=token)   # warden.app.api.app
    app = create_app(db_path, live, reads=ReadLimits(connections=4, queue=512, wait=5.0))
    app = create_app(db_path, live, prepare=Preparation(rpc, factory, chain_id))
                                                     # with the POST /prepare/... routes
    check_binding(host, token)                       # before binding beyond loopback

See docs/api.md for the endpoints."""

from warden.app.api.app import check_binding, create_app, is_loopback, serve
from warden.app.api.errors import (
    ApiError,
    BadParameter,
    Busy,
    Conflict,
    InsecureBinding,
    NodeFailed,
    NodeUnavailable,
    NotFound,
    Unauthorized,
)
from warden.app.api.gate import DEFAULT_READS, ReadLimits
from warden.app.api.live import LatencyHistogram, LiveState
from warden.app.api.prepare_chain import Preparation

__all__ = [
    "DEFAULT_READS",
    "ApiError",
    "BadParameter",
    "Busy",
    "Conflict",
    "InsecureBinding",
    "LatencyHistogram",
    "LiveState",
    "NodeFailed",
    "NodeUnavailable",
    "NotFound",
    "Preparation",
    "ReadLimits",
    "Unauthorized",
    "check_binding",
    "create_app",
    "is_loopback",
    "serve",
]
