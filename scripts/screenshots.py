#!/usr/bin/env python3
"""Screenshots of the operator console for the docs, from a real devnet with activity.

    .venv/bin/python scripts/screenshots.py            # writes docs/console-*.png

Starts `warden run` on a throwaway devnet (anvil, the contracts, the activity generator
opening and moving demo sessions: the same as `make run`, on a free port and a temporary
database), waits until sessions have closed for several reasons, then has the system's
headless Chromium (Debian's `chromium`) take:

- docs/console-overview.png  the overview at laptop width (1366 px)
- docs/console-session.png   a session closed by a rule, with its firing and transactions
- docs/console-phone.png     the overview at phone width (390 px), the first screenful

Stops the daemon (SIGTERM, which also stops its anvil) whatever happens.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import ViewportSize, sync_playwright

from warden.devnet import free_port

ROOT = Path(__file__).resolve().parent.parent
DEVNET_KEY = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d"  # anvil #1
LAPTOP: ViewportSize = {"width": 1366, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


DEVNET_CONFIG = ROOT / "config/devnet.yaml"  # what `make run` uses


def devnet_env(tmp: Path, port: int) -> dict[str, str]:
    """`make run`'s config/devnet.yaml as it is, on a database and a port of our own
    (environment overrides, docs/config.md)."""
    return {
        **os.environ,
        "WARDEN_DEVNET_KEY": DEVNET_KEY,
        "WARDEN_DATABASE": str(tmp / "warden.sqlite"),
        "WARDEN_API__PORT": str(port),
    }


def get(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as r:
        return json.loads(r.read())


def wait_for_activity(port: int, reasons: int, timeout: float) -> dict[str, int]:
    """Until sessions have closed for `reasons` different reasons (or the time is up)."""
    deadline = time.monotonic() + timeout
    closed: dict[str, int] = {}
    shown: dict[str, int] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):  # not answering yet
            closed = get(port, "/stats")["closed_by_reason"]
        if closed != shown:
            print(f"closed so far: {closed}", flush=True)
            shown = dict(closed)
        if len(closed) >= reasons:
            break
        time.sleep(2)
    return closed


def shoot(port: int, out: Path) -> list[Path]:
    url = f"http://127.0.0.1:{port}/"
    closed = get(port, "/sessions?status=closed&limit=1000")["items"]
    with_firing = [s for s in closed if s["close_reason"] in ("stop_loss", "take_profit")]
    wallet = (with_firing or closed or get(port, "/sessions")["items"])[0]["wallet"]
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("chromium is not installed: apt-get install chromium")
    shots = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        try:
            for name, viewport, hash_, full in (
                ("console-overview.png", LAPTOP, "#/", True),
                ("console-session.png", LAPTOP, f"#/session/{wallet}", True),
                ("console-phone.png", PHONE, "#/", False),
            ):
                page = browser.new_page(viewport=viewport, device_scale_factor=1)
                page.goto(url + hash_)
                page.locator("#main h1").wait_for()
                # the event stream stays open (the network is never idle): wait for the
                # data, then for the first live refresh to have drawn
                page.locator(".tile, .pairs").first.wait_for()
                page.locator("#live[data-mode=stream]").wait_for()  # (the CSP forbids eval)
                page.wait_for_timeout(2500)
                if hash_ == "#/":  # the feed lists events from the page's opening on
                    with contextlib.suppress(PlaywrightTimeout):
                        page.locator(".feed-item").nth(3).wait_for(timeout=60_000)
                target = out / name
                page.screenshot(path=str(target), full_page=full)
                shots.append(target)
                page.close()
        finally:
            browser.close()
    return shots


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where to write the PNGs")
    parser.add_argument("--reasons", type=int, default=4, help="close reasons to wait for")
    parser.add_argument("--timeout", type=float, default=240, help="seconds to wait at most")
    args = parser.parse_args()
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "daemon.log"
        env = devnet_env(Path(tmp), port)
        with log.open("wb") as sink:
            daemon = subprocess.Popen(
                [sys.executable, "-m", "warden", "run", "--config", str(DEVNET_CONFIG)],
                stdout=sink, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
            )  # fmt: skip
        try:
            print(f"devnet daemon on http://127.0.0.1:{port}/ (log {log})")
            closed = wait_for_activity(port, args.reasons, args.timeout)
            if not closed:
                print(log.read_text()[-3000:], file=sys.stderr)
                return 1
            for path in shoot(port, args.out):
                print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
