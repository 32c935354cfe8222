"""No secret is ever echoed: a canary planted in every key through every source (a
`${NAME}` value, a `WARDEN_<SECTION>__<KEY>` override, a secret file, a secret field
typed into the file, a key-like value anywhere) never shows in a `ConfigError`, in
`describe()`, in `warden config check`'s output, in `warden run`'s stderr (a real
process that exits 2), nor in the log of a daemon whose RPC URL carries a key."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from executor.signer import write_keystore
from warden.app.settings import ConfigError, WardenConfig, load_config
from warden.devnet import DEVNET_KEYS, free_port

REPO = Path(__file__).resolve().parents[3]
FACTORY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"

# Shapes a secret takes: a private key (with and without 0x), a provider token, words
# with spaces, quotes and a backslash (repr escapes them), an upper-case "name".
CANARIES = {
    "key": "0x" + "c0ffee5eed" * 6 + "abcd",
    "bare-key": "c0ffee5eed" * 6 + "dcba",
    "token": "sk_live_CANARY_9f8e7d6c5b4a39281706",
    "words": "canary horse battery staple 42",
    "quotes": "can'ary\"pass\\word-77",
    "name": "CANARY_LOOKS_LIKE_A_NAME_31337",
    "number": "98765432109876543210987",
}
WINDOW = 12  # no run of this many characters of a canary may show (partial echoes too)


def keys() -> Iterator[tuple[str, ...]]:
    """Every key of the config: (section, key), and ("database",)."""
    for section, info in WardenConfig.model_fields.items():
        model = info.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            for name, field in model.model_fields.items():
                yield section, field.alias or name
        else:
            yield (section,)


KEYS = list(keys())
LISTS = {("chain", "rpc"), ("rules", "files"), ("executor", "batch_tokens")}


def assert_hidden(canary: str, *outputs: str) -> None:
    text = "\n".join(outputs)
    windows = {canary[i : i + WINDOW] for i in range(max(1, len(canary) - WINDOW + 1))}
    shown = [w for w in windows if w in text or w.lower() in text.lower()]
    assert not shown, f"canary {canary!r} shows ({shown[0]!r}) in:\n{text}"


def attempt(path: Path, environ: dict[str, str]) -> str:
    """Everything the loader says about this config: its problems, or the resolved lines
    and warnings."""
    try:
        cfg = load_config(path, environ)
    except ConfigError as exc:
        return "\n".join(exc.problems)
    return "\n".join([*cfg.describe(), cfg.relayer_source(), *cfg.warnings()])


def yaml_for(where: tuple[str, ...], value: str) -> str:
    if len(where) == 1:
        return f"{where[0]}: {value}\n"
    return f"{where[0]}:\n  {where[1]}: {value}\n"


@pytest.fixture
def base(tmp_path: Path) -> Path:
    (tmp_path / "rules").mkdir()
    return tmp_path


@pytest.mark.parametrize("shape", list(CANARIES))
def test_canary_through_a_reference_in_every_key(base: Path, shape: str) -> None:
    canary = CANARIES[shape]
    for where in KEYS:
        forms = ['"${CANARY}"'] + (['["${CANARY}"]'] if where in LISTS else [])
        for form in forms:
            path = base / "warden.yaml"
            path.write_text(yaml_for(where, form))
            assert_hidden(canary, attempt(path, {"CANARY": canary}))


@pytest.mark.parametrize("shape", list(CANARIES))
def test_canary_through_an_override_of_every_key(base: Path, shape: str) -> None:
    canary = CANARIES[shape]
    path = base / "warden.yaml"
    path.write_text("")
    for where in KEYS:
        variable = "WARDEN_" + "__".join(part.upper() for part in where)
        values = [canary] + ([f'["{canary}"]'] if where in LISTS and '"' not in canary else [])
        for value in values:
            assert_hidden(canary, attempt(path, {variable: value}))


@pytest.mark.parametrize("shape", list(CANARIES))
def test_canary_in_a_secret_file_or_typed_into_a_secret_field(base: Path, shape: str) -> None:
    canary = CANARIES[shape]
    (base / "secret").write_text(canary + "\n")
    path = base / "warden.yaml"
    public = 'api:\n  host: "0.0.0.0"\n'
    for text, environ in [
        ("api:\n  token_file: secret\n", {}),
        (public + "  token_file: secret\n", {}),
        ("executor:\n  raw_key_file: secret\n", {}),
        ("", {"WARDEN_API__TOKEN_FILE": str(base / "secret")}),
        ("", {"WARDEN_EXECUTOR__RAW_KEY_FILE": str(base / "secret")}),
        (f"api:\n  token: {canary!r}\n", {}),
        (public + f"  token: {canary!r}\n", {}),
        (f"executor:\n  raw_key: {canary!r}\n", {}),
        (f"executor:\n  raw_key: [{canary!r}]\n", {}),
        (f"api:\n  token: {{a: {canary!r}}}\n", {}),
        # a password typed where its variable's name belongs
        ("executor:\n  keystore: secret\n  password_env: '${PW}'\n", {"PW": canary}),
        ("executor:\n  keystore: secret\n", {"WARDEN_EXECUTOR__PASSWORD_ENV": canary}),
        # the same secret quoted in a key of its own, and a key reading it elsewhere
        ('executor:\n  relayer: "${A}"\napi:\n  host: "${A}"\n', {"A": canary}),
    ]:
        path.write_text(text)
        assert_hidden(canary, attempt(path, environ))


def test_a_key_like_value_is_never_echoed_even_from_the_file(base: Path) -> None:
    path = base / "warden.yaml"
    for canary in (CANARIES["key"], CANARIES["bare-key"], "0X" + "AB" * 32, "ab" * 40):
        for where in KEYS:
            for form in (repr(canary), f"[{canary!r}]", f"{{x: {canary!r}}}"):
                path.write_text(yaml_for(where, form))
                assert_hidden(canary, attempt(path, {}))


def test_a_password_typed_into_password_env_is_not_printed_back(base: Path) -> None:
    write_keystore(base / "relayer.json", DEVNET_KEYS[1], "pw", kdf_iterations=2)
    path = base / "warden.yaml"
    for typed in ("hunter2", "Tr0ub4dor&3", "correct horse"):
        path.write_text(f"executor:\n  keystore: relayer.json\n  password_env: {typed!r}\n")
        with pytest.raises(ConfigError) as caught:
            load_config(path, {})
        (problem,) = caught.value.problems
        assert problem.startswith(f"{path}:3: executor.password_env: ")
        assert typed not in problem and "never the password" in problem
    path.write_text("executor:\n  keystore: relayer.json\n  password_env: WARDEN_KS_PW\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert "WARDEN_KS_PW is not set" in caught.value.problems[0]  # a name is named


def test_a_wrong_keystore_password_is_neither_echoed_nor_lineless(base: Path) -> None:
    write_keystore(base / "relayer.json", DEVNET_KEYS[1], "right-password", kdf_iterations=2)
    canary = CANARIES["token"]
    path = base / "warden.yaml"
    path.write_text(
        f'chain:\n  rpc: ["https://rpc.example"]\n  chain_id: 1\n  factory: "{FACTORY}"\n'
        "executor:\n  keystore: relayer.json\n  password_env: KS_PW\n"
    )
    cfg = load_config(path, {"KS_PW": canary})
    with pytest.raises(ConfigError) as caught:
        cfg.unlock({"KS_PW": canary})
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:6: executor.keystore: cannot decrypt")
    assert_hidden(canary, problem)
    # from an override, the place is the variable
    env = {"KS_PW": canary, "WARDEN_EXECUTOR__KEYSTORE": str(base / "relayer.json")}
    with pytest.raises(ConfigError) as caught:
        load_config(path, env).unlock(env)
    assert caught.value.problems[0].startswith("$WARDEN_EXECUTOR__KEYSTORE: executor.keystore:")


# -- real processes --------------------------------------------------------------------------
def warden(
    *args: str, env: dict[str, str], timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "warden", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **env},
        cwd=REPO,
        timeout=timeout,
    )


@pytest.mark.parametrize("shape", ["key", "token", "quotes"])
def test_config_check_and_run_never_print_a_canary(base: Path, shape: str) -> None:
    """Every key at once, through references and then through overrides: both commands
    refuse (exit 2) and neither prints the canary."""
    canary = CANARIES[shape]
    sections: dict[str, list[str]] = {}
    env: dict[str, str] = {}
    for i, where in enumerate(KEYS):
        env[f"CANARY_{i}"] = canary
        if len(where) == 1:
            sections.setdefault("", []).append(f'{where[0]}: "${{CANARY_{i}}}"')
        else:
            sections.setdefault(where[0], []).append(f'  {where[1]}: "${{CANARY_{i}}}"')
    text = "\n".join(sections.pop("", []))
    for section, lines in sections.items():
        text += f"\n{section}:\n" + "\n".join(lines)
    by_reference = base / "by-reference.yaml"
    by_reference.write_text(text + "\n")
    overrides = {"WARDEN_" + "__".join(p.upper() for p in where): canary for where in KEYS}
    by_override = base / "by-override.yaml"
    by_override.write_text("")
    for config, environ in ((by_reference, env), (by_override, overrides)):
        checked = warden("config", "check", str(config), "--unlock", env=environ)
        assert checked.returncode == 2, checked.stderr
        assert checked.stderr.strip().endswith("problems found")
        assert_hidden(canary, checked.stdout, checked.stderr)
        ran = warden("run", "--config", str(config), env=environ)
        assert ran.returncode == 2, ran.stderr
        assert "has problems" in ran.stderr and "Traceback" not in ran.stderr
        assert_hidden(canary, ran.stdout, ran.stderr)


def test_a_daemon_never_logs_its_rpc_key_or_token(base: Path) -> None:
    """A valid config whose node is down: `run` starts, cannot reach it and exits 1. The
    key in the URLs' path and query, the userinfo password and the API token never show
    in its log (debug level, both formats); the endpoints show as scheme://host:port/….
    (Every retry and failover line is covered in tests/chain/test_client.py.)"""
    dead = free_port()
    (base / "rules" / "idle.yaml").write_bytes((REPO / "config/rules/idle.yaml").read_bytes())
    key, query_key, password = "PATHKEY0a1b2c3d4e5f", "QUERYKEY9z8y7x6w", "USERPASS5u4v3"
    token = CANARIES["token"] + "-long-enough-for-a-remote-api"
    urls = [
        f"http://127.0.0.1:{dead}/v3/{key}",
        f"http://user:{password}@127.0.0.1:{dead}/rpc?apikey={query_key}",
    ]
    for json_logs in ("false", "true"):
        config = base / "warden.yaml"
        config.write_text(
            "chain:\n"
            f"  rpc: ['{urls[0]}', '${{RPC_2}}']\n"
            f"  chain_id: 31337\n  factory: '{FACTORY}'\n"
            "  retry_initial: 0.01\n  retry_attempts: 4\n  timeout: 2\n"
            "executor:\n  relayer: '0x70997970C51812dc3A010C7d01b50e0d17dc79C8'\n"
            f"database: {base / 'warden.sqlite'}\n"
            f"api:\n  host: 0.0.0.0\n  port: {free_port()}\n  token: '${{TOKEN}}'\n"
            f"logging:\n  level: debug\n  json: {json_logs}\n"
        )
        checked = warden("config", "check", str(config), env={"RPC_2": urls[1], "TOKEN": token})
        assert checked.returncode == 0, checked.stderr
        assert f"chain.rpc: [http://127.0.0.1:{dead}/…, *** (from $RPC_2)]" in checked.stdout
        ran = warden("run", "--config", str(config), env={"RPC_2": urls[1], "TOKEN": token})
        assert ran.returncode == 1, ran.stderr
        assert "cannot run" in ran.stderr and f"127.0.0.1:{dead}/…" in ran.stderr
        for secret in (key, query_key, password, token):
            assert_hidden(secret, checked.stdout, checked.stderr, ran.stdout, ran.stderr)


def test_a_message_quoting_a_secret_in_an_unknown_form_quotes_nothing() -> None:
    """The last check: when a parser quoted a value in a form the masking does not know
    (inside a longer word, re-cased), the whole message is replaced."""
    from warden.app.settings.loading import _safe
    from warden.app.settings.secrets import Outside

    outside = Outside()
    outside.add(("api", "port"), "$PORT", "8o8o")
    outside.add(("chain", "timeout"), "$TIMEOUT", "LongerValue")
    for message in ("bad x8o8ox", "bad 8o8O", "bad LONGERvalue!"):
        shown = _safe(("api", "port"), message, outside, outside.every_value())
        assert shown == "the value from $PORT is not valid here — check it against docs/config.md"
    assert _safe(("api", "port"), "got '8o8o'", outside, []) == "got ***"


@pytest.mark.parametrize("shape", list(CANARIES))
@pytest.mark.parametrize(
    "url",
    [
        "postgresql://warden:{pw}@db.internal:5432/warden",  # valid: shown without it
        "postgresql://warden:{pw}@db.internal:54x2/warden",  # a port that is no number
        "postgresql://warden:{pw}@/warden",  # no host
        "postgres://warden:{pw}@db.internal",  # no database name
        "mysql://warden:{pw}@db.internal/warden",  # not a database Warden speaks
    ],
)
def test_a_password_in_a_database_url_is_never_echoed(base: Path, shape: str, url: str) -> None:
    """`database:` may be a PostgreSQL URL with its password in it: whether the URL is
    valid or not, written in the file or taken from `${NAME}`, the password never shows;
    a valid one is described with `***` in its place."""
    from urllib.parse import quote

    canary = CANARIES[shape]
    text = url.format(pw=quote(canary, safe=""))
    for how, environ in (("file", {}), ("env", {"DB_URL": text})):
        value = "${DB_URL}" if how == "env" else f"'{text}'"
        (base / "warden.yaml").write_text(f"database: {value}\n")
        said = attempt(base / "warden.yaml", environ)
        assert_hidden(canary, said)
        assert_hidden(quote(canary, safe=""), said)
        if url.startswith("postgresql://warden:{pw}@db.internal:5432"):  # the valid one
            shown = "postgresql://warden:***@db.internal:5432/warden"
            assert shown in said or how == "env", said  # the rest stays readable
        else:
            assert ("database" in said and "e.g. postgresql://" in said) or "mysql" in said
