"""`warden rules replay` over a real indexed chain: what would have fired, when, and the
summary per rule."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests._chain import Chain
from tests.conftest import TOKEN, Roles, Session, Stack
from tests.indexer._support import config, index_to_head

ROOT = Path(__file__).resolve().parents[3]


def replay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", "rules", "replay", *args],
        capture_output=True, text=True, timeout=120, cwd=ROOT, check=False,
    )  # fmt: skip


async def test_replay_reports_stop_loss_and_expiry_firings(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    losing = make_session(policy="", stopLoss=900 * TOKEN)
    expiring = make_session(policy="", stopLoss=0, expiry=chain.now() + 3_600)
    make_session(policy="", stopLoss=0)  # quiet: nothing fires
    chain.send(stack.game.functions.setOutcome(False, 0), roles.deployer)
    play = stack.game.encode_abi("play", args=[200 * TOKEN])
    receipt = chain.send(
        losing.wallet.functions.execute(stack.game.address, play, 200 * TOKEN), roles.operator
    )
    chain.mine(chain.now() + 7_200)  # the expiry passes; only the clock says so
    db = tmp_path / "x.sqlite"
    await index_to_head(chain.anvil.url, db, config(stack.factory.address))

    out = replay(str(ROOT / "config" / "rules"), "--db", str(db))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    stop = [line for line in lines if losing.wallet.address in line]
    assert len(stop) == 1, out.stdout
    assert f"block {receipt['blockNumber']:>9}" in stop[0]
    assert "stop-loss: close (stop_loss) at balance 800" in stop[0]
    exp = [line for line in lines if expiring.wallet.address in line]
    assert len(exp) == 1 and "expiry: close (expired)" in exp[0], out.stdout
    assert "3 firings" not in out.stdout and "2 firings" in out.stdout
    assert any(line.split()[:2] == ["stop-loss", "1"] for line in lines), out.stdout

    late = replay(str(ROOT / "config" / "rules"), "--db", str(db), "--from-block",
                  str(receipt["blockNumber"] + 1), "--quiet")  # fmt: skip
    assert late.returncode == 0 and "1 firings" in late.stdout, late.stdout


def test_replay_refuses_bad_rules_and_an_empty_database(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - name: x\n    when: balance <= 5 minutes\n    action: close\n")
    out = replay(str(bad), "--db", str(tmp_path / "none.sqlite"))
    assert out.returncode == 2 and "bad.yaml:3" in out.stderr, out.stderr
    missing = replay(str(ROOT / "config" / "rules"), "--db", str(tmp_path / "none.sqlite"))
    assert missing.returncode == 2 and "no such database" in missing.stderr
    assert not (tmp_path / "none.sqlite").exists()
    (tmp_path / "empty.sqlite").write_bytes(b"")
    empty = replay(str(ROOT / "config" / "rules"), "--db", str(tmp_path / "empty.sqlite"))
    assert empty.returncode == 2 and "nothing indexed yet" in empty.stderr, empty.stderr
