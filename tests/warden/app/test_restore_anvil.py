"""Backup and restore under the real daemon on anvil (docs/operations.md, "After a
restore").

A backup is taken with `warden db backup` while the daemon indexes and sends; the daemon
goes on closing sessions the backup knows nothing of; it is stopped, the backup restored
with `warden db restore`, and the daemon started again on it. Then:

- no intent is sent twice: the restarted daemon sends no transaction at all, although
  its restored outbox had intents pending and did not know the closes sent after the
  backup (the nonce sync takes the node's count; the preflight and the re-synced index
  show those sessions closed);
- nothing is lost: every intent of the backup ends final; each intent decided after the
  backup is either decided again (final) or its session is indexed closed by the relayer;
  no due action is missed; every relayer close on chain is in the index;
- the restored database reaches the original's indexed state (sessions, events, ignored
  logs, checkpoint), and a fresh index's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.chaos._daemon import ROOT, RULES, Activity, Daemon, wait_until, workload, world
from tests.chaos._daemon import write_config as chaos_config
from tests.chaos._state import (
    checkpoint,
    close_targets,
    compare,
    fresh_index,
    missed_actions,
    read_only,
    relayer_txs,
    unfinished_intents,
)
from tests.chaos._verdict import settle
from warden.devnet import free_port


def confirmed(db: Path) -> int:
    try:
        with read_only(db) as conn:
            row = conn.execute("SELECT COUNT(*) FROM intents WHERE state = 'confirmed'").fetchone()
    except Exception:  # not created yet
        return 0
    return int(row[0])


def intents(db: Path) -> dict[str, str]:
    with read_only(db) as conn:
        return dict(conn.execute("SELECT key, state FROM intents").fetchall())


def warden_db(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", "db", *args],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )  # fmt: skip


async def test_restore_after_sends_the_backup_does_not_know(tmp_path: Path) -> None:
    with world() as w:
        config = chaos_config(tmp_path, w.anvil.url, w, port=free_port())
        daemon = Daemon(config, tmp_path / "daemon.log")
        activity = Activity(workload(w, seed=2026))
        daemon.start()
        activity.start()
        try:
            assert wait_until(lambda: confirmed(daemon.db) >= 3, 300), "no closes confirmed"
            backup = tmp_path / "b.sqlite"
            taken = warden_db("backup", "--config", str(config), "--to", str(backup))
            assert taken.returncode == 0, taken.stderr
            assert daemon.alive()  # a backup does not disturb the daemon
            known = confirmed(backup)
            assert wait_until(lambda: confirmed(daemon.db) >= known + 3, 300), (
                "no closes sent after the backup"
            )
        finally:
            activity.stop()
        w.chain.mine(w.chain.now() + 1)
        assert settle(w, daemon, 180) is not None, unfinished_intents(daemon.db)[:5]
        assert daemon.stop() == 0
        original = tmp_path / "original.sqlite"
        original.write_bytes(daemon.db.read_bytes())  # stopped: checkpointed, no -wal
        before = await relayer_txs(w.anvil.url, w.relayer, w.start_block)
        after_backup = set(intents(original)) - set(intents(backup))
        sent_after = confirmed(original) - known
        assert sent_after >= 3 and after_backup

        restored = warden_db("restore", str(backup), "--config", str(config))
        assert restored.returncode == 0, restored.stderr
        assert "is kept as" in restored.stdout
        assert confirmed(daemon.db) == known  # the outbox as the backup had it

        daemon.start()
        try:
            assert settle(w, daemon, 240) is not None, unfinished_intents(daemon.db)[:5]
        finally:
            assert daemon.stop() == 0

        after = await relayer_txs(w.anvil.url, w.relayer, w.start_block)
        resent = [t for t in after if t.hash not in {b.hash for b in before}]
        assert resent == [], [(t.hash, close_targets(t, w.stack.factory.address)) for t in resent]
        # nothing lost: every intent the backup knew is here, final; each decided after
        # the backup is here too (its crossing re-evaluated as the index re-synced), or the
        # re-sync found its session closed, so nothing fired again: by our close when the
        # original confirmed it (the decision's record is gone, its effect is not), by
        # another's when the original gave it up
        now = intents(daemon.db)
        assert set(intents(backup)) <= set(now)
        assert unfinished_intents(daemon.db) == []
        with read_only(daemon.db) as conn:
            closed_by = dict(conn.execute("SELECT wallet, closed_by FROM sessions").fetchall())
        was = intents(original)
        for key in after_backup:
            wallet = key.split(":", 1)[0]
            if key in now:
                assert now[key] in ("confirmed", "obsolete"), (key, now[key])
            elif was[key] == "confirmed":  # our close: on chain and indexed as ours
                assert str(closed_by[wallet]).lower() == w.relayer.lower(), key
            else:  # it ended without our close (the owner closed first): closed anyway
                assert was[key] in ("obsolete", "failed") and closed_by[wallet], (key, was[key])
        # the same indexed state as the original's, and as a fresh index
        assert await compare(daemon.db, original) == []
        cp = checkpoint(daemon.db)
        assert cp is not None
        fresh = tmp_path / "fresh.sqlite"
        await fresh_index(w.anvil.url, w.stack.factory.address, w.start_block, fresh,
                          upto=cp.number)  # fmt: skip
        assert await compare(daemon.db, fresh) == []
        assert await missed_actions(fresh, [RULES], cp.timestamp) == []
