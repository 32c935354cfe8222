"""`warden notify` as a user runs it (a real process): `test` delivers a signed
`notify.test` event to a real receiver and exits 0, or says why not (exit 1) without
quoting the URL; an unknown channel is exit 2 naming the configured ones; `list` shows
deliveries with their state and last error; `redrive` puts dead ones back."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from database import open_database
from notify import Deliveries, EventLog, NotifyEvent, NotifySettings, Route, Router, Severity
from tests.notify._receiver import receiver_thread, verify
from warden.devnet import free_port

REPO = Path(__file__).resolve().parents[3]
SECRET = "cli-test-secret-0123456789abcdef"


def config(tmp: Path, url: str) -> Path:
    path = tmp / "warden.yaml"
    path.write_text(f"""\
chain:
  rpc: [http://127.0.0.1:8545]
  chain_id: 31337
  factory: "0x5FbDB2315678afecb367f032d93F642f64180aa3"
database: {tmp / "w.sqlite"}
rules:
  files: []
executor:
  relayer: "0x5FbDB2315678afecb367f032d93F642f64180aa3"
notify:
  channels:
    - name: hook
      type: webhook
      url: "{url}"
      secret: "{SECRET}"
""")
    return path


def warden(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "import sys; from warden.cli import main; sys.exit(main())",
         *args],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip


def test_test_delivers_a_signed_event(tmp_path: Path) -> None:
    with receiver_thread() as receiver:
        out = warden("notify", "test", "hook", "--config", str(config(tmp_path, receiver.url)))
        assert out.returncode == 0, out.stderr
        assert "hook: delivered notify.test:hook:" in out.stdout
        (got,) = receiver.requests
        assert got.body["kind"] == "notify.test" and got.body["data"]["channel"] == "hook"
        assert verify(SECRET.encode(), got.headers, got.raw, time.time(), 300)


def test_test_says_why_not_without_the_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook?token=cliUrlCanary77"
    out = warden("notify", "test", "hook", "--config", str(config(tmp_path, url)))
    assert out.returncode == 1
    assert "hook: not delivered: cannot connect" in out.stderr
    assert "cliUrlCanary77" not in out.stdout + out.stderr
    out = warden("notify", "test", "pager", "--config", str(config(tmp_path, url)))
    assert out.returncode == 2 and "no channel named 'pager'" in out.stderr
    assert "channels: hook" in out.stderr


def test_list_and_redrive(tmp_path: Path) -> None:
    path = config(tmp_path, "http://127.0.0.1:9/hook")

    async def prepare() -> None:
        db = await open_database(tmp_path / "w.sqlite")
        try:
            cfg = NotifySettings.model_validate(
                {"channels": [{"name": "hook", "type": "command", "command": ["/bin/true"]}]}
            )
            log = EventLog(db)
            await log.setup()
            router = Router(db, [Route("hook", cfg.channels[0])])
            await router.start()
            await log.append_now([
                NotifyEvent(id=f"e{n}", kind="alert.indexing_lag", severity=Severity.WARNING,
                            at_ms=n, data={"state": "raised"})
                for n in range(3)
            ])  # fmt: skip
            await router.drain()
            d = Deliveries(db)
            for row in (await d.page(0, 10))[:2]:
                await d.failed(row.id, 10, "HTTP 502: bad gateway", 5, None)
        finally:
            await db.close()

    asyncio.run(prepare())
    out = warden("notify", "list", "--config", str(path), "--state", "dead")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 2 and all("dead" in x and "HTTP 502" in x for x in lines)
    out = warden("notify", "redrive", "--config", str(path), "hook")
    assert out.returncode == 0 and "2 dead deliveries pending again" in out.stdout
    out = warden("notify", "list", "--config", str(path))
    assert sum(" pending " in x for x in out.stdout.splitlines()) == 3
