"""Session Warden: the composition of `chain`, `indexer`, `rules` and `executor`.

warden.app      the running application: settings, pipeline, daemon, HTTP API
warden.cli      one module per command (`warden --help`)
warden.devnet   a local anvil with the contracts deployed, and demo activity
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("session-warden")
except PackageNotFoundError:  # running from a checkout that was never installed
    __version__ = "0+unknown"

__all__ = ["__version__"]
