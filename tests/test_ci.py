"""`.ci/run`: CI installs Debian's chromium when it is missing (so the console's browser
tests always run there), leaves it alone when present, and then runs exactly `make test`.
Run with fakes of `apt-get` and `make` on a PATH of their own (each logs its call)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fake(bin_dir: Path, name: str, log: Path, code: int = 0) -> None:
    script = bin_dir / name
    script.write_text(f'#!/bin/bash\necho "{name} $*" >> "{log}"\nexit {code}\n')
    script.chmod(0o755)


def _run(tmp_path: Path, *, chromium: bool, apt_fails: bool = False) -> tuple[int, list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    log.touch()
    for tool in ("dirname",):  # what the script needs besides bash builtins
        found = shutil.which(tool)
        assert found is not None
        (bin_dir / tool).symlink_to(found)
    _fake(bin_dir, "apt-get", log, 100 if apt_fails else 0)
    _fake(bin_dir, "make", log)
    if chromium:
        _fake(bin_dir, "chromium", log)
    bash = shutil.which("bash")
    assert bash is not None
    done = subprocess.run(
        [bash, str(ROOT / ".ci/run")], env={**os.environ, "PATH": str(bin_dir)},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return done.returncode, log.read_text().splitlines()


def test_ci_installs_chromium_when_missing_then_runs_make_test(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, chromium=False)
    assert code == 0
    assert calls == [
        "apt-get update",
        "apt-get install -y --no-install-recommends chromium",
        "make test",
    ]


def test_ci_leaves_an_installed_chromium_alone(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, chromium=True)
    assert code == 0 and calls == ["make test"]


def test_a_failed_install_fails_ci_before_the_tests(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, chromium=False, apt_fails=True)
    assert code != 0 and calls == ["apt-get update"]
