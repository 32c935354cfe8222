"""The read-only HTTP API: sessions, events, intents, status, stats, metrics, OpenAPI.

    app = create_app(db_path, live, token=token)   # warden.app.api.app
    check_binding(host, token)                       # before binding beyond loopback

See docs/api.md for the endpoints."""

from warden.app.api.app import check_binding, create_app, is_loopback, serve
from warden.app.api.errors import ApiError, BadParameter, InsecureBinding, NotFound, Unauthorized
from warden.app.api.live import LatencyHistogram, LiveState

__all__ = [
    "ApiError",
    "BadParameter",
    "InsecureBinding",
    "LatencyHistogram",
    "LiveState",
    "NotFound",
    "Unauthorized",
    "check_binding",
    "create_app",
    "is_loopback",
    "serve",
]
