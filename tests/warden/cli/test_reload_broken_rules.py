# ruff: noqa: RUF001  (the look-alike characters are the point of these tests)
"""A bad rule file never kills or freezes the daemon: one real `warden run` process on an
anvil of its own is sent SIGHUP with each kind of broken rule file in turn. After each
it is still alive, still indexing (a block mined after the reload is indexed), still on
the old rules (/status shows the same version), the failure counter went up by one, and
the log names the file and line at ERROR, without a traceback. At the end a stop-loss
still closes its session (the old rules fire). A broken file at start exits 2 with
FILE:LINE and no traceback.

One daemon serves every case (starting one costs seconds); each case restores the rule
directory before the next.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.chaos._daemon import RELAYER_KEY, Daemon, World, wait_until, world, write_config
from tests.conftest import TOKEN, create_session, session_params
from warden.devnet import free_port

Undo = Callable[[], None]
BROKEN = "zz-broken.yaml"


def _rule(when: str) -> str:
    return f"rules:\n  - name: broken\n    when: {when}\n    action: close\n    reason: idle\n"


def _write(text: str | bytes) -> Callable[[Path], tuple[Path, Undo]]:
    """A new file beside the good ones."""

    def make(rules: Path) -> tuple[Path, Undo]:
        path = rules / BROKEN
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text, encoding="utf-8")
        return path, path.unlink

    return make


def _directory(rules: Path) -> tuple[Path, Undo]:
    """A rule file replaced by a directory of the same name."""
    path = rules / "stop-loss.yaml"
    aside = rules.parent / "stop-loss.yaml.aside"
    path.rename(aside)
    path.mkdir()

    def undo() -> None:
        path.rmdir()
        aside.rename(path)

    return path, undo


def _unreadable(rules: Path) -> tuple[Path, Undo]:
    path = rules / "stop-loss.yaml"
    path.chmod(0)
    return path, lambda: path.chmod(0o644)


def _fifo(rules: Path) -> tuple[Path, Undo]:
    """A named pipe nobody writes to: opening it for reading would block forever."""
    path = rules / BROKEN
    os.mkfifo(path)
    return path, path.unlink


def _rules_dir_gone(rules: Path) -> tuple[Path, Undo]:
    aside = rules.parent / "rules.aside"
    rules.rename(aside)

    def undo() -> None:
        aside.rename(rules)

    return rules, undo


ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{n}: &{n} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
    for p, n in zip("abcdefgh", "bcdefghi", strict=True)
)

# case -> (how to break the rules, (line, what the ERROR line must say))
CASES: dict[str, tuple[Callable[[Path], tuple[Path, Undo]], tuple[int, str]]] = {
    "non-ascii": (_write(_rule("balance ‹= ²")), (3, "non-ASCII character")),
    "superscript": (_write(_rule("balance <= ²")), (3, "non-ASCII character '²'")),
    "arabic-indic-digit": (_write(_rule("balance <= ٣")), (3, "ASCII digits")),
    "object-tag": (
        _write('rules: !!python/object/apply:os.system ["echo pwned"]\n'),
        (1, "tag !!python/object/apply:os.system is not accepted"),
    ),
    "huge-exponent": (_write(_rule("balance <= 1e999999999")), (3, "exponent")),
    "power": (_write(_rule("balance <= 2^256")), (3, "no power operator")),
    "over-uint256": (_write(_rule(f"balance <= {2**256}")), (3, "too large")),
    "1000-digits": (_write(_rule("balance <= " + "9" * 1000)), (3, "too many digits")),
    "5000-digits": (_write(_rule("balance <= " + "9" * 5000)), (3, "characters long")),
    "deep-parentheses": (
        _write(_rule("(" * 40 + "balance <= 1" + ")" * 40)),
        (3, "nested more than"),
    ),
    "900-parentheses": (
        _write(_rule("(" * 900 + "balance<=1" + ")" * 900)),
        (3, "more than 200 parts"),
    ),
    "nul-byte": (_write(_rule("balance <= 1").replace("balance", "bal\0ance")), (3, "NUL")),
    "not-utf8": (_write(b"rules:\n  - name: \xff\xfe\n"), (2, "not UTF-8")),
    "alias-bomb": (_write(ALIAS_BOMB), (0, "too many aliases")),
    "deep-yaml-nesting": (_write("rules: " + "[" * 50_000 + "]" * 50_000 + "\n"), (1, "nested")),
    "empty-file": (_write(""), (1, "file is empty")),
    # Valid, but past what durable-rules can compile: its C code would never return.
    "600-rules": (
        _write(
            "rules:\n"
            + "".join(
                f"  - name: r{i:03d}\n    when: balance <= {i + 1}\n    action: close\n"
                "    reason: idle\n"
                for i in range(600)
            )
        ),
        (0, "more than the rules engine evaluates"),
    ),
    "fifo": (_fifo, (1, "not a regular file")),
    "directory": (_directory, (1, "it is a directory")),
    "unreadable": (_unreadable, (1, "Permission denied")),
    "rules-dir-removed": (_rules_dir_gone, (1, "No such file")),
}


@dataclass
class Live:
    world: World
    daemon: Daemon
    port: int
    rules: Path
    log: Path
    tmp: Path

    def get(self, path: str) -> bytes:
        url = f"http://127.0.0.1:{self.port}{path}"
        with urllib.request.urlopen(url, timeout=5) as reply:
            body: bytes = reply.read()
            return body

    def status(self) -> dict[str, object]:
        data: dict[str, object] = json.loads(self.get("/status"))
        return data

    def failures(self) -> int:
        for line in self.get("/metrics").decode().splitlines():
            if line.startswith("warden_rules_reload_failures_total "):
                return int(float(line.split()[1]))
        raise AssertionError("warden_rules_reload_failures_total missing from /metrics")

    def indexed(self) -> int:
        value = self.status()["indexed_block"]
        return value if isinstance(value, int) else -1

    def answers(self, check: Callable[[], bool]) -> bool:
        try:
            return check()
        except OSError:
            return False


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    tmp = tmp_path_factory.mktemp("reload")
    with world() as w:
        port = free_port()
        config = write_config(tmp, w.anvil.url, w, port=port)
        log = tmp / "daemon.log"
        daemon = Daemon(config, log)
        daemon.start()
        state = Live(w, daemon, port, tmp / "rules", log, tmp)
        try:
            w.chain.mine()  # start_block is past the deployment: give it a block to index
            ready = wait_until(lambda: state.answers(lambda: state.indexed() >= 0), 120)
            assert ready, log.read_text()[-3000:]
            yield state
        finally:
            code = daemon.stop()
        assert code == 0, log.read_text()[-3000:]


def _log_since(log: Path, offset: int) -> list[dict[str, object]]:
    with log.open("rb") as handle:
        handle.seek(offset)
        text = handle.read().decode("utf-8", "replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.parametrize("case", list(CASES))
def test_sighup_with_a_broken_rule_file_keeps_the_daemon_and_the_old_rules(
    live: Live, case: str
) -> None:
    if case == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads a file whatever its mode")
    breaker, (line, says) = CASES[case]
    version = live.status()["rules_version"]
    before = live.failures()
    offset = live.log.stat().st_size
    path, undo = breaker(live.rules)
    try:
        assert live.daemon.proc is not None
        live.daemon.proc.send_signal(signal.SIGHUP)
        counted = wait_until(lambda: live.answers(lambda: live.failures() > before), 60)
        tail = live.log.read_bytes()[offset:].decode("utf-8", "replace")[-3000:]
        assert counted, f"no refused reload counted; alive={live.daemon.alive()}\n{tail}"
    finally:
        undo()
    assert live.daemon.alive()
    assert live.failures() == before + 1
    assert live.status()["rules_version"] == version  # the old rules still run

    # Still indexing: a block mined now is indexed.
    live.world.chain.mine()
    head = live.world.head()
    assert wait_until(lambda: live.answers(lambda: live.indexed() >= head), 60)

    records = _log_since(live.log, offset)
    errors = [str(r["message"]) for r in records if r.get("level") == "error"]
    where = f"rules: {path}:{line}:" if line else f"rules: {path}:"
    assert any(m.startswith(where) and says in m for m in errors), errors
    assert not any("Traceback" in json.dumps(r) for r in records)


def test_the_old_rules_still_fire_after_the_refused_reloads(live: Live) -> None:
    w = live.world
    params = session_params(w.chain, w.stack, w.roles, policy="")
    session = create_session(w.chain, w.stack, w.roles.owner, params, os.urandom(32))
    w.chain.send(session.wallet.functions.withdraw(850 * TOKEN), w.roles.owner)  # 150 < 200

    def closed() -> bool:
        reply = json.loads(live.get(f"/sessions/{session.wallet.address}"))
        return bool(reply["session"]["status"] == "closed")

    assert wait_until(lambda: live.answers(closed), 90), live.log.read_text()[-3000:]


def test_a_broken_rule_file_at_start_exits_2_with_file_and_line(live: Live) -> None:
    tmp = live.tmp / "start"
    tmp.mkdir()
    rules = tmp / "rules"
    shutil.copytree(live.rules, rules)
    (rules / BROKEN).write_text(_rule("balance <= 1e999999999"), encoding="utf-8")
    config = write_config(tmp, live.world.anvil.url, live.world, port=free_port())
    env = {**os.environ, "WARDEN_TEST_KEY": RELAYER_KEY}
    result = subprocess.run(
        [sys.executable, "-m", "warden", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 2, result.stderr[-3000:]
    assert f"{rules / BROKEN}:3:" in result.stderr and "exponent" in result.stderr
    assert "Traceback" not in result.stderr
