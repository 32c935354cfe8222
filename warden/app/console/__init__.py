"""The operator console: a page the daemon serves beside its API (plain HTML, CSS and
JavaScript modules in `static/`, no build step, nothing fetched from elsewhere).

    public_paths = add_console(app)   # GET / and /console/<asset>; no data in them

The page holds no data: it reads the JSON API from the browser, with the bearer token
the operator types in (kept in the tab's sessionStorage, sent as a header, never put in a
URL). So its own paths need no token, and every answer carries a Content-Security-Policy
that allows scripts, styles and connections from this origin only. See docs/console.md.
"""

from warden.app.console.pages import CSP, add_console, console_paths

__all__ = ["CSP", "add_console", "console_paths"]
