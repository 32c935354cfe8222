"""rules is pure: among Warden packages it imports only contracts and yamlsource, and
yamlsource imports none."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WARDEN = {"chain", "indexer", "executor", "warden", "contracts", "yamlsource", "rules"}


@pytest.mark.parametrize(
    ("package", "allowed"),
    [("rules", {"rules", "contracts", "yamlsource"}), ("yamlsource", {"yamlsource"})],
)
def test_package_imports_only_what_it_may(package: str, allowed: set[str]) -> None:
    probe = f"import sys, {package}; print(' '.join({{m.split('.')[0] for m in sys.modules}}))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=True,
    )
    loaded = set(out.stdout.split()) & WARDEN
    assert loaded <= allowed, f"importing {package} loads {sorted(loaded - allowed)}"
