"""`warden --version`: the package version and the devnet toolchain it was built with."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NoReturn

from warden.cli.exit_codes import ExitCode

REPO = Path(__file__).resolve().parents[2]  # a checkout; site-packages in an installed wheel


def version_text() -> str:
    """The package version and the devnet toolchain it was built and tested with; a
    version whose file an installed wheel lacks is "unknown"."""
    return f"warden {_package_version()} (anvil {_anvil_version()}, solc {_solc_version()})"


def _package_version() -> str:
    try:
        return metadata.version("session-warden")
    except metadata.PackageNotFoundError:
        return "unknown"


def _anvil_version() -> str:
    """anvil as package-lock.json pins it, else as package.json asks for it."""
    for file, key in (("package-lock.json", "packages"), ("package.json", "dependencies")):
        try:
            entries = json.loads((REPO / file).read_text())[key]
        except (OSError, ValueError, LookupError, TypeError):
            continue
        for name, entry in entries.items():
            if name.removeprefix("node_modules/").startswith("@foundry-rs/anvil"):
                return str(entry.get("version", "unknown") if isinstance(entry, dict) else entry)
    return "unknown"


def _solc_version() -> str:
    from contracts import solc_version

    try:
        return solc_version()
    except OSError:
        return "unknown"


class VersionAction(argparse.Action):
    """`--version`, its files read only when asked for."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: object) -> NoReturn:
        print(version_text())
        parser.exit(ExitCode.OK)
