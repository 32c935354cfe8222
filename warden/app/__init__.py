"""The running application: settings (`warden.app.settings`), the rules pipeline, the
daemon that drives indexer → rules → executor in one loop, the HTTP API, logging.

The CLI (`warden.cli`) is the only caller; nothing below `warden` imports this."""
