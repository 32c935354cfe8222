"""`warden index` as a real process: bad input gets a clear error and a non-zero exit."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import Stack
from warden.devnet import Anvil, free_port


def index(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", "index", "--quiet", *args],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_to_head_prints_a_summary(tmp_path: Path, anvil: Anvil, stack: Stack) -> None:
    out = index("--rpc", anvil.url, "--factory", stack.factory.address,
                "--db", str(tmp_path / "w.sqlite"), "--to-head")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("indexed to block ") and "sessions" in out.stdout


def test_a_bad_factory_address_is_a_config_error(tmp_path: Path) -> None:
    out = index("--rpc", "http://127.0.0.1:1", "--factory", "0x1234", "--db",
                str(tmp_path / "w.sqlite"))  # fmt: skip
    assert out.returncode == 2 and "--factory '0x1234' is not an address" in out.stderr


def test_a_wrong_chain_id_names_the_fix(tmp_path: Path, anvil: Anvil, stack: Stack) -> None:
    out = index("--rpc", anvil.url, "--factory", stack.factory.address, "--chain-id", "1",
                "--db", str(tmp_path / "w.sqlite"), "--to-head")  # fmt: skip
    assert out.returncode == 1
    assert "serves chain id 31337, but the config says 1" in out.stderr


def test_a_dead_node_is_reported_after_retries(tmp_path: Path, stack: Stack) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    out = index("--rpc", dead, "--factory", stack.factory.address, "--retry-initial", "0.01",
                "--db", str(tmp_path / "w.sqlite"), "--to-head")  # fmt: skip
    assert out.returncode == 1
    assert "did not answer after retrying" in out.stderr and "Traceback" not in out.stderr
