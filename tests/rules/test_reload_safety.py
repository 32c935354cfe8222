"""A reload never raises and never blocks: files that are not rule files (a FIFO, a
directory, binary, huge, unreadable, gone) are Problems with FILE:LINE, an exception
nobody expected (a bug of ours) is a Problem too, the old rules keep running and
`failures` counts each refusal."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import pytest

import rules.reload
from rules import RulesError, RulesHolder, RulesHost, check_files
from rules.loader import MAX_FILE_BYTES
from rules.rule_file import RuleFileReader

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def host() -> RulesHost:
    return RulesHost()


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "config/rules", target)
    return target


def messages(paths: list[Path]) -> list[str]:
    """check_files in a thread: a read that blocks fails the test instead of hanging it."""
    out: list[str] = []

    def run() -> None:
        problems, _ = check_files(paths)
        out.extend(str(p) for p in problems)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=30)
    assert not worker.is_alive(), "check_files blocked"
    return out


def test_a_fifo_is_refused_without_being_opened(rules_dir: Path) -> None:
    fifo = rules_dir / "pipe.yaml"
    os.mkfifo(fifo)
    assert messages([rules_dir]) == [f"{fifo}:1:1: cannot read file: not a regular file"]


def test_a_device_is_refused(tmp_path: Path) -> None:
    assert messages([Path("/dev/zero")]) == ["/dev/zero:1:1: cannot read file: not a regular file"]


def test_a_directory_named_like_a_rule_file_is_refused(rules_dir: Path) -> None:
    (rules_dir / "sub.yaml").mkdir()
    assert messages([rules_dir]) == [
        f"{rules_dir / 'sub.yaml'}:1:1: cannot read file: it is a directory, not a rule file"
    ]


def test_a_missing_directory_or_file_is_refused(tmp_path: Path) -> None:
    gone = tmp_path / "gone"
    assert messages([gone]) == [f"{gone}:1:1: cannot read file: No such file or directory"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its mode")
def test_an_unreadable_file_is_refused(rules_dir: Path) -> None:
    path = rules_dir / "stop-loss.yaml"
    path.chmod(0)
    try:
        assert messages([rules_dir]) == [f"{path}:1:1: cannot read file: Permission denied"]
    finally:
        path.chmod(0o644)


def test_bytes_that_are_not_utf8_are_refused_at_their_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "bin.yaml"
    path.write_bytes(b"rules:\n  - name: a\xff\n")
    assert messages([path]) == [f"{path}:2:12: byte 0xff is not UTF-8: save the file as UTF-8 text"]


def test_a_huge_file_is_refused_without_reading_it_all(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    with path.open("wb") as handle:
        handle.truncate(MAX_FILE_BYTES * 50)  # sparse: 200 MB of NULs, cheap to make
    assert messages([path]) == [
        f"{path}:1:1: file is larger than {MAX_FILE_BYTES:,} bytes: is this the right file?"
    ]


def test_an_exception_inside_one_file_is_a_problem_and_the_others_are_read(
    rules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = RuleFileReader.read

    def read(self: RuleFileReader) -> Any:
        if self.file.endswith("sweep.yaml"):  # a rule no preset replaces
            raise KeyError("boom")
        return real(self)

    monkeypatch.setattr(RuleFileReader, "read", read)
    assert messages([rules_dir]) == [
        f"{rules_dir / 'sweep.yaml'}:1:1: internal error while loading rules: KeyError: 'boom' "
        "(nothing from these rule files was used; please report this with the files)",
    ]


def test_reload_keeps_the_old_rules_and_counts_every_refusal(
    host: RulesHost, rules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = RulesHolder(host, [rules_dir])
    version = holder.version
    broken = rules_dir / "zz.yaml"
    broken.write_text(
        "rules:\n  - name: a\n    when: balance <= 1e999999999\n    action: close\n"
        "    reason: idle\n"
    )
    first = holder.reload()
    assert (first.ok, first.changed, first.version, first.failures) == (False, False, version, 1)
    assert all(str(p).startswith(f"{broken}:3:") for p in first.problems), first.problems

    broken.unlink()

    def explode(*args: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(rules.reload, "Evaluator", explode)
    (rules_dir / "new.yaml").write_text(
        "rules:\n  - name: n\n    when: balance <= 1\n    action: close\n    reason: idle\n"
    )
    second = holder.reload()
    assert (second.ok, second.version, second.failures) == (False, version, 2)
    (problem,) = second.problems
    assert problem.file == str(rules_dir) and problem.line == 1
    assert problem.message.startswith(
        "internal error while loading rules: RecursionError: maximum recursion depth exceeded"
    )

    monkeypatch.setattr(rules.reload, "check_files", explode)
    third = holder.reload()
    assert (third.ok, third.failures) == (False, 3)
    assert holder.version == version and holder.current.ruleset.digest

    monkeypatch.undo()
    fourth = holder.reload()
    assert (fourth.ok, fourth.changed, fourth.failures) == (True, True, 3)
    assert holder.version != version


def test_the_first_load_raises_rules_error_even_for_an_internal_error(
    host: RulesHost, rules_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: object) -> None:
        raise TypeError("unexpected")

    monkeypatch.setattr(rules.reload, "Evaluator", explode)
    with pytest.raises(RulesError) as info:
        RulesHolder(host, [rules_dir])
    (problem,) = info.value.problems
    assert problem.message.startswith("internal error while loading rules: TypeError: unexpected")
