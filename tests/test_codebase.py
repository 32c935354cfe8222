"""The codebase stays ruff- and mypy-clean and keeps its import contracts: `make lint`
enforced by the test suite."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize(
    "command",
    [
        ["ruff", "check", "--no-cache", "."],
        ["ruff", "format", "--no-cache", "--check", "."],
        ["mypy"],
        ["lint-imports", "--no-cache"],
    ],
    ids=["ruff-check", "ruff-format", "mypy", "import-contracts"],
)
def test_lint_is_clean(command: list[str]) -> None:
    out = subprocess.run(
        [str(BIN / command[0]), *command[1:]],
        cwd=ROOT,
        # this tree, not whichever copy is installed in the virtualenv
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert out.returncode == 0, f"`{' '.join(command)}` failed:\n{out.stdout}{out.stderr}"
