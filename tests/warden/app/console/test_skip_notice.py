"""Without chromium the browser tests are skipped, each with the reason, and the run ends
with one line saying so and how to enable them (a real pytest run, chromium hidden from
its PATH)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]


def test_without_chromium_the_browser_tests_skip_and_say_how_to_enable_them(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}  # nothing on it: no chromium
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         "tests/warden/app/console/test_console_browser.py", "-k", "uint256 or phone"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    out = run.stdout
    assert run.returncode == 0, out + run.stderr
    assert "2 skipped" in out, out
    assert "chromium is not installed" in out
    notice = (
        "2 browser test(s) skipped: chromium is not installed; `apt-get install chromium` "
        "enables them"
    )
    assert notice in out, out
