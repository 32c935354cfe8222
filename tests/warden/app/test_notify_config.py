"""The `notify:` section: every mistake is a FILE:LINE problem naming the key and the
fix (unknown channel type, missing or short secret, bad URL, a filter naming no event,
unknown keys, duplicate names), all of them in one go, in under a second, and no secret
or webhook URL is ever quoted — in errors, in `describe()`, in `warden config check`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from notify import WebhookChannel
from warden.app.settings import ConfigError, load_config

REPO = Path(__file__).resolve().parents[3]
SLACK_URL = "https://hooks.slack.com/services/T0CANARY/B0CANARY/slackCanaryToken9876"
SECRET = "webhook-canary-secret-5f4e3d2c1b0a"
HEAD = """\
chain:
  rpc: [http://127.0.0.1:8545]
  chain_id: 31337
  factory: "0x5FbDB2315678afecb367f032d93F642f64180aa3"
rules:
  files: []
executor:
  relayer: "0x5FbDB2315678afecb367f032d93F642f64180aa3"
"""


def write(tmp: Path, notify: str) -> Path:
    path = tmp / "warden.yaml"
    path.write_text(HEAD + notify)
    return path


def problems(path: Path, environ: dict[str, str] | None = None) -> list[str]:
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    assert time.monotonic() - started < 5  # well under a second on an idle machine
    return caught.value.problems


BAD = f"""\
notify:
  channels:
    - name: pager
      type: pagerduty
      url: https://events.example
    - name: nosecret
      type: webhook
      url: https://api.example.com/hook
    - name: badurl
      type: slack
      url: "ftp:{SLACK_URL[6:]}"
    - name: filter
      type: discord
      url: https://discord.com/api/webhooks/1/discordCanaryToken1234
      kinds: [session.opened, alert]
    - name: short
      type: webhook
      url: https://api.example.com/hook
      secret: "abc"
    - name: extra
      type: command
      command: [/bin/true]
      shell: yes
    - name: env
      type: webhook
      url: https://api.example.com/hook
      secret: "${{MISSING_SECRET}}"
"""


def test_every_problem_at_its_line_with_the_fix(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    found = problems(path)
    base = len(HEAD.splitlines())
    expected = {
        base + 4: ("notify.channels[0].type", "unknown channel type 'pagerduty'"),
        base + 6: ("notify.channels[1]", "needs `secret` (or `secret_file`)"),
        base + 11: ("notify.channels[2].url", "http:// or https:// URL"),
        base + 15: ("notify.channels[3].kinds", "'session.opened' names no event"),
        base + 16: ("notify.channels[4]", "shorter than 16 characters"),
        base + 23: ("notify.channels[5].shell", "unknown key 'shell'"),
        base + 27: ("notify.channels[6].secret", "MISSING_SECRET is not set"),
    }
    assert len(found) == len(expected), "\n".join(found)
    for line, (key, words) in expected.items():
        match = [p for p in found if p.startswith(f"{path}:{line}: {key}: ")]
        assert match and words in match[0], (line, key, found)
    text = "\n".join(found)
    for secret in (SLACK_URL[8:], "slackCanaryToken9876", "discordCanaryToken1234", 'abc"'):
        assert secret not in text


def test_duplicate_names_and_bad_delivery_settings(tmp_path: Path) -> None:
    path = write(tmp_path, """\
notify:
  delivery: {attempts: 0, max_delay: 0.1, base_delay: 1}
  channels:
    - {name: a, type: command, command: [/bin/true]}
    - {name: a, type: command, command: [/bin/false]}
""")  # fmt: skip
    found = problems(path)
    assert any("notify.delivery: delivery.attempts is from 1 to 1000" in p for p in found)
    assert any("notify.channels: two channels are named 'a'" in p for p in found)


def test_a_queue_out_of_bounds_is_named_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, """\
notify:
  delivery:
    queue: 0
  channels:
    - {name: a, type: command, command: [/bin/true]}
""")  # fmt: skip
    found = problems(path)
    assert any(
        f"{path}:{HEAD.count(chr(10)) + 3}:" in p and "queue is from 1 to 1000000" in p
        for p in found
    ), found


def test_secrets_from_the_environment_and_files_are_used_and_masked(tmp_path: Path) -> None:
    (tmp_path / "hook.secret").write_text(SECRET + "\n")
    path = write(tmp_path, """\
notify:
  channels:
    - name: from-file
      type: webhook
      url: https://api.example.com/hook?token=urlCanaryToken42
      secret_file: hook.secret
    - name: from-env
      type: slack
      url: "${SLACK_URL}"
""")  # fmt: skip
    cfg = load_config(path, {"SLACK_URL": SLACK_URL})
    hook, slack = cfg.notify.channels
    assert isinstance(hook, WebhookChannel) and hook.secret is not None
    assert hook.secret.get_secret_value() == SECRET
    assert slack.url.get_secret_value() == SLACK_URL  # type: ignore[union-attr]
    described = "\n".join(cfg.describe())
    assert "notify.channels[0].secret: *** (from file" in described
    assert "notify.channels[1].url: *** (from $SLACK_URL)" in described
    assert "notify.channels[0].url: ***" in described
    for secret in (SECRET, "urlCanaryToken42", "slackCanaryToken9876"):
        assert secret not in described


def test_config_check_reports_them_with_exit_2_and_no_secret(tmp_path: Path) -> None:
    path = write(tmp_path, BAD)
    out = subprocess.run(
        [sys.executable, "-c", "import sys; from warden.cli import main; sys.exit(main())",
         "config", "check", str(path)],
        capture_output=True, text=True, cwd=REPO, timeout=120, check=False,
    )  # fmt: skip
    assert out.returncode == 2, out.stderr
    text = out.stdout + out.stderr
    assert f"{path}:" in text and "unknown channel type 'pagerduty'" in text
    for secret in ("slackCanaryToken9876", "discordCanaryToken1234"):
        assert secret not in text


def test_retention_mistakes_are_refused_at_their_line(tmp_path: Path) -> None:

    (tmp_path / "rules").mkdir(exist_ok=True)
    path = tmp_path / "retention.yaml"
    path.write_text(
        "notify:\n  retention:\n    events_days: -1\n    delivered_days: nan\n"
        "    dead_days: true\n    batch: 0\n    interval: 0.5\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    lines = caught.value.problems
    for n, key in enumerate(("events_days", "delivered_days", "dead_days", "batch", "interval")):
        assert any(p.startswith(f"{path}:{n + 3}: notify.retention.{key}: ") for p in lines), key
    path.write_text("notify:\n  retention: {events_days: 0, dead_days: 90, interval: 0}\n")
    r = load_config(path, {}).notify.retention
    assert (r.events_days, r.dead_days, r.interval, r.batch) == (0, 90, 0, 1000)
