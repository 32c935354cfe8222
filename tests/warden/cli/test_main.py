"""`warden` itself: --version, --help, a wrong command, and the exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

import contracts
from warden.app.daemon import CONFIG_EXIT, FORCED_EXIT
from warden.app.storage import STORAGE_EXIT
from warden.cli import version as cli
from warden.cli.exit_codes import ExitCode
from warden.cli.version import version_text

ROOT = Path(__file__).resolve().parents[3]


def run_warden(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", *args], capture_output=True, text=True, timeout=60
    )


def test_version_names_the_package_anvil_and_solc() -> None:
    out = run_warden("--version")
    assert out.returncode == ExitCode.OK, out.stderr
    lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
    (anvil,) = (v["version"] for k, v in lock.items() if "@foundry-rs/anvil" in k)
    solc = (ROOT / "contracts" / "SOLC_VERSION").read_text().strip()
    package = metadata.version("session-warden")
    assert out.stdout == f"warden {package} (anvil {anvil}, solc {solc})\n"


def test_version_without_the_repository_files_says_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As in an installed wheel: no package-lock.json, package.json or SOLC_VERSION."""

    def missing() -> str:
        raise FileNotFoundError("SOLC_VERSION")

    monkeypatch.setattr(cli, "REPO", tmp_path)
    monkeypatch.setattr(contracts, "solc_version", missing)
    assert version_text().endswith("(anvil unknown, solc unknown)")


def test_version_falls_back_on_package_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    deps = {"@foundry-rs/anvil-linux-amd64": "9.9.9", "solc": "0.8.37"}
    (tmp_path / "package.json").write_text(json.dumps({"dependencies": deps}))
    monkeypatch.setattr(cli, "REPO", tmp_path)
    assert "(anvil 9.9.9, " in version_text()


def test_help_lists_the_commands() -> None:
    out = run_warden("--help")
    assert out.returncode == ExitCode.OK, out.stderr
    for command in ("run", "devnet", "index", "rules", "config", "inspect", "status"):
        assert command in out.stdout
    assert "--version" in out.stdout


def test_an_unknown_command_is_a_usage_error() -> None:
    out = run_warden("frobnicate")
    assert out.returncode == ExitCode.CONFIG
    assert "invalid choice: 'frobnicate'" in out.stderr and out.stdout == ""


def test_exit_codes_are_the_documented_ones() -> None:
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("OK", 0), ("RUNTIME_FAILURE", 1), ("CONFIG", 2), ("STORAGE", 3), ("FORCED", 130)
    ]  # fmt: skip
    assert ExitCode.FORCED == FORCED_EXIT
    assert ExitCode.STORAGE == STORAGE_EXIT
    assert ExitCode.CONFIG == CONFIG_EXIT  # the daemon refusing its database
    readme = (ROOT / "README.md").read_text()
    assert "Exit codes: 0 clean stop, 2 configuration problem, 1 runtime failure, 3 the " in readme
    assert "130 a second signal forced the exit." in readme
