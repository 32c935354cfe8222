"""Serving the console's files: each one read from the package once, at startup, and
routed by its exact name (no directory lookup, so no path can reach beyond `static/`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from importlib import resources

from aiohttp import web

# No inline script or style anywhere, nothing from another origin; the page may only
# talk to the API beside it. `frame-ancestors` keeps it out of other sites' frames.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # A new daemon version serves new files: revalidate rather than run stale code.
    "Cache-Control": "no-cache",
}
_TYPES = {
    ".html": "text/html",
    ".js": "text/javascript",
    ".css": "text/css",
    ".svg": "image/svg+xml",
}
PREFIX = "/console/"


def _assets() -> dict[str, tuple[bytes, str]]:
    """name → (content, content type) of every file in static/."""
    root = resources.files("warden.app.console") / "static"
    out: dict[str, tuple[bytes, str]] = {}
    for entry in root.iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _TYPES:
            out[entry.name] = (entry.read_bytes(), _TYPES[suffix])
    if "index.html" not in out:
        raise RuntimeError("the console's static/index.html is missing from the package")
    return out


def console_paths() -> frozenset[str]:
    """The paths the console answers: `/` and `/console/<file>` for each static file."""
    return frozenset({"/", *(PREFIX + name for name in _assets() if name != "index.html")})


def _handler(body: bytes, content_type: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def serve(request: web.Request) -> web.Response:
        return web.Response(
            body=body, headers={**_HEADERS, "Content-Type": f"{content_type}; charset=utf-8"}
        )

    return serve


def add_console(app: web.Application) -> frozenset[str]:
    """Route the console's files on `app` (GET and HEAD); the paths, which need no token."""
    paths = []
    for name, (body, content_type) in sorted(_assets().items()):
        path = "/" if name == "index.html" else PREFIX + name
        app.router.add_get(path, _handler(body, content_type), allow_head=True)
        paths.append(path)
    return frozenset(paths)
