"""The daemon config: every bad config names its key, line and fix; secrets come from the
environment or files and never show; amounts are exact; the shipped files load."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chain.units import format_amount, parse_address, parse_amount, parse_duration
from contracts import UINT256_MAX
from executor.signer import write_keystore
from warden.app.settings import ConfigError, WardenConfig, load_config
from warden.devnet import DEVNET_KEYS

REPO = Path(__file__).resolve().parents[3]
DEVNET_KEY = DEVNET_KEYS[1]
DEVNET_ADDRESS = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
FACTORY = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
PROD = f'chain:\n  rpc: ["https://rpc.example"]\n  chain_id: 1\n  factory: "{FACTORY}"\n'
DRY = f'executor:\n  relayer: "{DEVNET_ADDRESS}"\n'


def write(tmp_path: Path, text: str, name: str = "warden.yaml") -> Path:
    (tmp_path / "rules").mkdir(exist_ok=True)
    path = tmp_path / name
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str, environ: dict[str, str] | None = None) -> list[str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ or {})
    prefix = f"{path}:"
    assert all(p.startswith(prefix) for p in caught.value.problems)
    return [p.removeprefix(prefix) for p in caught.value.problems]


# (config text, environment, the exact problem: "LINE: key.path: message")
BAD = [
    ("chian: {}\n", {}, "1: chian: unknown key 'chian' in the top level; did you mean 'chain'?"),
    (
        "chain:\n  confirmation: 3\n",
        {},
        "2: chain.confirmation: unknown key 'confirmation' in chain; did you mean 'confirmations'?",
    ),
    (
        "api:\n  tokn_file: x\n",
        {},
        "2: api.tokn_file: unknown key 'tokn_file' in api; did you mean 'token_file'?",
    ),
    (
        'chain:\n  rpc: ["https://rpc.example"]\n  factory: "' + FACTORY + '"\n' + DRY,
        {},
        "1: chain.chain_id: required when chain.rpc is set — write the network's chain id (1 "
        "for Ethereum mainnet) so Warden refuses a wrong endpoint",
    ),
    (
        'chain:\n  rpc: ["https://rpc.example"]\n  chain_id: 1\n' + DRY,
        {},
        "1: chain.factory: required when chain.rpc is set — write the address of the "
        "SessionWalletFactory to index",
    ),
    (
        PROD + "  confirmations: 0\n" + DRY,
        {},
        "5: chain.confirmations: 0 is refused on chain 1: Warden would act on blocks a reorg "
        "can remove — use 2 or more (0 is for devnets)",
    ),
    (
        "chain:\n  rpc: [ws://node]\n  chain_id: 1\n  factory: '" + FACTORY + "'\n" + DRY,
        {},
        "2: chain.rpc[0]: an RPC endpoint is an http:// or https:// URL",
    ),
    (
        "chain:\n  factory: 0x5FbDB2315678afecb367f032d93F642f64180aa3\n",
        {},
        '2: chain.factory: YAML read this address as a number — put it in quotes: "0x..."',
    ),
    (
        "chain:\n  factory: '0x5FbDB2315678afecb367f032d93F642f64180aA3'\n",
        {},
        "2: chain.factory: 0x5FbDB2315678afecb367f032d93F642f64180aA3 fails its EIP-55 "
        "checksum (mixed case): a character is probably mistyped — copy the address again "
        "from a trusted source",
    ),
    (
        "chain:\n  factory: '0x1234'\n",
        {},
        "2: chain.factory: '0x1234' is not an address — expected 0x followed by 40 hex digits",
    ),
    (
        "chain:\n  poll_interval: 0\n",
        {},
        "2: chain.poll_interval: 0 seconds — it must be above 0",
    ),
    (
        "chain:\n  reorg_window: 8\n  confirmations: 8\n",
        {},
        "3: chain.confirmations: must be below chain.reorg_window (8) — raise reorg_window",
    ),
    (
        "chain:\n  start_block: true\n",
        {},
        "2: chain.start_block: expected a whole number, not True",
    ),
    (
        "executor:\n  min_tip: 0.5\n",
        {},
        "2: executor.min_tip: 0.5 is a floating-point number, which cannot hold wei exactly — "
        'write a string with a unit, e.g. "0.05 ether" or "50 gwei"',
    ),
    (
        "executor:\n  min_tip: '1.5 wei'\n",
        {},
        "2: executor.min_tip: '1.5 wei' has more decimals than wei allows (0) — it is not a "
        "whole number of wei; write it in wei",
    ),
    (
        "executor:\n  max_fee_per_gas: '5 finney'\n",
        {},
        "2: executor.max_fee_per_gas: unknown unit 'finney' in '5 finney' — use wei, gwei or ether",
    ),
    (
        "executor:\n  intent_ttl: 3x\n",
        {},
        "2: executor.intent_ttl: '3x' is not a duration — write whole numbers with units d, h, "
        'm, s ("24h", "1h30m") or an int of seconds',
    ),
    (
        "executor:\n  max_batch_size: 1000\n",
        {},
        "2: executor.max_batch_size: 1000 is outside 1 to 256 — SessionWalletFactory.closeBatch "
        "takes at most 256",
    ),
    (
        "executor:\n  batch_member_gas: 30000\n",
        {},
        "2: executor.batch_member_gas: 30000 is outside 40000 to 1000000 — "
        "SessionWalletFactory.closeBatch refuses other stipends",
    ),
    (
        "executor:\n  max_batch_size: 10\n  single_close_gas_cap: 40000000\n",
        {},
        "3: executor.single_close_gas_cap: 40000000 is outside 50000 to 30000000 — an honest "
        "close alone takes about 60,000 gas; no block holds more than 30,000,000",
    ),
    (
        "executor:\n  replacement_bump_percent: 5\n",
        {},
        "2: executor.replacement_bump_percent: 5 is outside 10 to 1000 — nodes refuse a "
        "replacement raising fees by less than 10%",
    ),
    (
        "executor:\n  dry_run: false\n",
        {},
        "2: executor.dry_run: false needs a relayer key — set executor.keystore (with a "
        "password source), or remove dry_run to run dry",
    ),
    (
        PROD,
        {},
        "1: executor.relayer: required in dry-run without a key: transactions are preflighted "
        "from it — write the relayer's address",
    ),
    (
        PROD + "executor:\n  raw_key: '${KEY}'\n",
        {"KEY": DEVNET_KEY},
        "6: executor.raw_key: a raw private key is refused on chain 1 (devnet only) — put the "
        "key in an encrypted keystore and set executor.keystore and executor.password_env or "
        "executor.password_file",
    ),
    (
        "executor:\n  raw_key: '${KEY}'\n",
        {"KEY": "0x1234"},
        "2: executor.raw_key: not a private key: 32 bytes of hex (64 digits, optional 0x)",
    ),
    (
        f"executor:\n  raw_key: '${{KEY}}'\n  relayer: '{FACTORY}'\n",
        {"KEY": DEVNET_KEY},
        f"2: executor.raw_key: its address is {DEVNET_ADDRESS}, not executor.relayer {FACTORY} "
        "— fix either",
    ),
    (
        "executor:\n  raw_key: '${WARDEN_KEY}'\n",
        {},
        "2: executor.raw_key: environment variable WARDEN_KEY is not set — export it before "
        "starting",
    ),
    (
        "chain:\n  rpc: ['https://node/${KEY}']\n",
        {"KEY": "k"},
        "2: chain.rpc[0]: a ${NAME} reference must be the whole value — put the complete value "
        'in the environment variable and write just "${NAME}"',
    ),
    (
        "executor:\n  keystore: missing.json\n  password_env: PW\n",
        {"PW": "x"},
        "2: executor.keystore: cannot read {dir}/missing.json: No such file or directory — "
        "check the path",
    ),
    (
        "executor:\n  password_env: PW\n",
        {"PW": "x"},
        "2: executor.password_env: a password without executor.keystore — set the keystore too",
    ),
    (
        "api:\n  host: 0.0.0.0\n",
        {},
        "1: api.token: required because api.host '0.0.0.0' is not loopback: the API shows every "
        'session — set api.token ("${WARDEN_API_TOKEN}") or api.token_file, or bind to '
        "127.0.0.1",
    ),
    (
        "api:\n  token: a\n  token_file: b\n",
        {},
        "3: api.token_file: set token or token_file, not both",
    ),
    (
        "api:\n  token_file: nothere\n",
        {},
        "2: api.token_file: cannot read {dir}/nothere: No such file or directory — check the "
        "path (relative to the config)",
    ),
    ("api:\n  port: 70000\n", {}, "2: api.port: 70000 is not a TCP port (0 to 65535)"),
    (
        "logging:\n  level: loud\n",
        {},
        "2: logging.level: Input should be 'debug', 'info', 'warning' or 'error' — use one of them",
    ),
    ("logging:\n  json: maybe\n", {}, "2: logging.json: expected true or false, not 'maybe'"),
    (
        "executor:\n  - keystore\n",
        {},
        "1: executor: expected a mapping of keys under it, found a list",
    ),
    (
        "rules:\n  files: [nowhere]\n",
        {},
        "2: rules.files[0]: {dir}/nowhere does not exist — "
        "check the path (relative to the config file)",
    ),
    (
        "chain: {}\nchain: {}\n",
        {},
        "2: duplicate key 'chain' in one mapping: keep only one of them",
    ),
    (
        "- 1\n",
        {},
        "1: (top level): expected a mapping of sections (chain:, executor:, ...), found a list",
    ),
]


@pytest.mark.parametrize(("text", "environ", "expected"), BAD, ids=range(len(BAD)))
def test_bad_config_names_key_line_and_fix(
    tmp_path: Path, text: str, environ: dict[str, str], expected: str
) -> None:
    assert problems(tmp_path, text, environ) == [expected.replace("{dir}", str(tmp_path))]


def test_every_problem_at_once_in_line_order(tmp_path: Path) -> None:
    text = (
        "chian: {}\n"
        "chain:\n  rpc: ['https://rpc.example']\n  confirmations: 0\n"
        "executor:\n  min_tip: 0.5\n  raw_key: '${KEY}'\n"
        "api:\n  host: 0.0.0.0\n"
    )
    found = problems(tmp_path, text, {"KEY": DEVNET_KEY})
    assert [p.split(": ")[1] for p in found] == [
        "chian",
        "chain.chain_id",
        "chain.factory",
        "chain.confirmations",
        "executor.min_tip",
        "executor.raw_key",
        "api.token",
    ]
    assert [int(p.split(":")[0]) for p in found] == sorted(int(p.split(":")[0]) for p in found)


def test_yaml_syntax_error_has_a_line(tmp_path: Path) -> None:
    (found,) = problems(tmp_path, "chain:\n  rpc: [unclosed\napi: {}\n")
    assert found.startswith(("3: YAML syntax error", "4: YAML syntax error"))


# -- safe defaults -------------------------------------------------------------------------
def test_empty_file_is_a_safe_devnet(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""), {})
    assert cfg.is_devnet and cfg.dry_run and cfg.confirmations == 0
    assert cfg.api.host == "127.0.0.1" and cfg.api.enabled and cfg.api.token is None
    assert cfg.load_signer({}) is None
    assert cfg.rules.files == [tmp_path / "rules"]  # relative to the config file
    assert cfg.database == tmp_path / "warden.sqlite"


def test_production_defaults(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, PROD + DRY), {})
    assert not cfg.is_devnet and cfg.confirmations == 2 and cfg.dry_run
    assert cfg.chain.factory == FACTORY
    assert "dry-run" in cfg.relayer_source() and DEVNET_ADDRESS in cfg.relayer_source()
    # the sections hold the decided values: components read them as they are
    assert (cfg.chain.confirmations, cfg.chain.reorg_window) == (2, 64)
    assert "confirmations" not in cfg.chain.model_fields_set  # decided, not written
    ex = cfg.executor
    assert ex.dry_run is True and ex.min_relayer_balance == 5 * 10**16
    assert ex.rate_window == 3_600 and ex.min_tip == 10**9
    assert cfg.chain.retry_policy().attempts == 10
    assert "chain.confirmations: 2" in cfg.describe()


def test_a_devnet_chain_id_allows_zero_confirmations_and_a_raw_key(tmp_path: Path) -> None:
    text = (
        "chain:\n  rpc: ['http://127.0.0.1:8545']\n  chain_id: 31337\n"
        f"  factory: '{FACTORY}'\nexecutor:\n  raw_key: '${{K}}'\n"
    )
    cfg = load_config(write(tmp_path, text), {"K": DEVNET_KEY})
    assert cfg.confirmations == 0 and not cfg.dry_run
    signer = cfg.load_signer({})
    assert signer is not None and signer.address == DEVNET_ADDRESS


def test_lowercase_address_is_checksummed(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, f"chain:\n  factory: '{FACTORY.lower()}'\n"), {})
    assert cfg.chain.factory == FACTORY


def test_low_confirmations_and_cap_below_tip_warn(tmp_path: Path) -> None:
    text = PROD + "  confirmations: 1\n" + DRY + "  max_fee_per_gas: '1 wei'\n"
    warnings = load_config(write(tmp_path, text), {}).warnings()
    assert any(w.startswith("chain.confirmations is 1") for w in warnings)
    assert any(w.startswith("executor.max_fee_per_gas (1 wei) is below") for w in warnings)


# -- secrets ---------------------------------------------------------------------------------
SECRET = "s3cret-token-value"
LONG_SECRET = "s3cret-token-value-long-enough-for-0.0.0.0"


def test_secret_never_shows(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, "api:\n  token: '${TOK}'\n"), {"TOK": SECRET})
    assert cfg.api.token is not None and cfg.api.token.get_secret_value() == SECRET
    for shown in (repr(cfg), str(cfg), str(cfg.model_dump()), cfg.model_dump_json()):
        assert SECRET not in shown
    assert SECRET not in "\n".join(cfg.describe())
    assert "api.token: *** (from $TOK)" in cfg.describe()


def test_token_file_and_env_values_masked(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(LONG_SECRET + "\n")
    text = "chain:\n  rpc: ['${RPC}']\n  chain_id: 1\n  factory: '" + FACTORY + "'\n"
    text += DRY + "api:\n  host: 0.0.0.0\n  token_file: token\n"
    url = "https://node.example/v2/apikey123"
    cfg = load_config(write(tmp_path, text), {"RPC": url})
    assert cfg.api.token is not None and cfg.api.token.get_secret_value() == LONG_SECRET
    assert cfg.chain.rpc == [url]
    described = "\n".join(cfg.describe())
    assert LONG_SECRET not in described and "apikey123" not in described
    assert "chain.rpc: [*** (from $RPC)]" in described


def test_env_values_are_coerced_like_literals(tmp_path: Path) -> None:
    text = "api:\n  port: '${PORT}'\n  enabled: '${ON}'\n"
    cfg = load_config(write(tmp_path, text), {"PORT": "9001", "ON": "false"})
    assert (cfg.api.port, cfg.api.enabled) == (9001, False)


def test_bad_secret_value_is_not_echoed(tmp_path: Path) -> None:
    found = problems(tmp_path, "chain:\n  chain_id: '${CID}'\n", {"CID": "hunter2"})
    assert len(found) == 1 and "chain.chain_id" in found[0] and "hunter2" not in found[0]


def test_keystore_with_password_file(tmp_path: Path) -> None:
    write_keystore(tmp_path / "relayer.json", DEVNET_KEY, "pw", kdf_iterations=2)
    (tmp_path / "pw.txt").write_text("pw\n")
    text = PROD + "executor:\n  keystore: relayer.json\n  password_file: pw.txt\n"
    cfg = load_config(write(tmp_path, text), {})
    assert not cfg.dry_run and "keystore" in cfg.relayer_source()
    signer = cfg.load_signer({})
    assert signer is not None and signer.address == DEVNET_ADDRESS


def test_keystore_needs_exactly_one_password_source(tmp_path: Path) -> None:
    write_keystore(tmp_path / "relayer.json", DEVNET_KEY, "pw", kdf_iterations=2)
    found = problems(tmp_path, PROD + "executor:\n  keystore: relayer.json\n")
    assert found == [
        "6: executor.keystore: needs exactly one password source — set executor.password_env "
        "(a variable name) or executor.password_file"
    ]
    found = problems(tmp_path, PROD + "executor:\n  keystore: relayer.json\n  password_env: NOPE\n")
    assert found == [
        "7: executor.password_env: the environment variable NOPE is not set — export the "
        "keystore password in it before starting (password_env holds the variable's name, "
        "never the password)"
    ]


# -- amounts and durations --------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "wei"),
    [
        ("0.1 ether", 10**17),
        ("0.05 ether", 5 * 10**16),
        ("50 gwei", 50 * 10**9),
        ("123", 123),
        ("1.000000000000000001 ether", 10**18 + 1),
        ("1.50 gwei", 1_500_000_000),
        ("2 ETHER", 2 * 10**18),
        ("0 wei", 0),
        (7, 7),
    ],
)
def test_amounts_exact(text: str | int, wei: int) -> None:
    assert parse_amount(text) == wei


@pytest.mark.parametrize(
    "bad",
    ["0.0000000000000000001 ether", "1.1 wei", "0.1234567891 gwei", "-1", "1e18", "", "ether",
     1.0, True, None, str(2**256), 2**256],
)  # fmt: skip
def test_amounts_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_amount(bad)


@given(st.integers(min_value=0, max_value=UINT256_MAX))
def test_amount_round_trips(wei: int) -> None:
    assert parse_amount(format_amount(wei)) == wei
    whole, rest = divmod(wei, 10**18)
    assert parse_amount(f"{whole}.{rest:018d} ether") == wei
    whole, rest = divmod(wei, 10**9)
    assert parse_amount(f"{whole}.{rest:09d} gwei") == wei


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("24h", 86400), ("10m", 600), ("90s", 90), ("2d", 172800), ("1h30m", 5400), (45, 45),
     ("300", 300), ("0", 0)],
)  # fmt: skip
def test_durations(text: str | int, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["1.5h", "h", "10 minutes", -1, 1.5, True, "1h 30m"])
def test_durations_refused(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_address_forms() -> None:
    assert parse_address(FACTORY.upper().replace("0X", "0x")) == FACTORY
    with pytest.raises(ValueError):
        parse_address(FACTORY[:-1] + "A")


def test_model_defaults_without_a_file() -> None:
    cfg = WardenConfig()
    assert cfg.is_devnet and cfg.dry_run and cfg.api.host == "127.0.0.1"


# -- shipped files and the command ----------------------------------------------------------
def test_devnet_yaml_loads() -> None:
    cfg = load_config(REPO / "config" / "devnet.yaml", {"WARDEN_DEVNET_KEY": DEVNET_KEY})
    assert cfg.is_devnet and not cfg.dry_run and cfg.confirmations == 0
    assert (cfg.api.host, cfg.api.port) == ("127.0.0.1", 8080)
    assert REPO / "config" / "rules" in [p.resolve() for p in cfg.rules.files]
    signer = cfg.load_signer({})
    assert signer is not None and signer.address == DEVNET_ADDRESS


def test_devnet_yaml_without_its_key_names_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(REPO / "config" / "devnet.yaml", {})
    (problem,) = caught.value.problems
    assert "executor.raw_key: environment variable WARDEN_DEVNET_KEY is not set" in problem


def test_example_yaml_loads(tmp_path: Path) -> None:
    shutil.copy(REPO / "config" / "warden.example.yaml", tmp_path / "warden.yaml")
    shutil.copytree(REPO / "config" / "rules", tmp_path / "rules")
    (tmp_path / "secrets").mkdir()
    write_keystore(tmp_path / "secrets" / "relayer.json", DEVNET_KEY, "pw", kdf_iterations=2)
    env = {
        "WARDEN_RPC_PRIMARY": "https://node.example/key",
        "WARDEN_KEYSTORE_PASSWORD": "pw",
        "WARDEN_DATABASE": str(tmp_path / "warden.sqlite"),  # /var/lib/warden is not here
    }
    cfg = load_config(tmp_path / "warden.yaml", env)
    assert not cfg.is_devnet and cfg.chain.chain_id == 1 and cfg.confirmations == 2
    assert not cfg.dry_run and cfg.executor.max_fee_per_gas == 200 * 10**9
    assert cfg.executor.intent_ttl == 86400
    signer = cfg.load_signer(env)
    assert signer is not None and signer.address == cfg.executor.relayer


def _warden(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`warden config ...` in a child process, through the same parser hooks cli.py uses."""
    code = (
        "import argparse, sys\n"
        "from warden.cli.config import add_config_parser, run_config_command\n"
        "parser = argparse.ArgumentParser(prog='warden')\n"
        "add_config_parser(parser.add_subparsers(dest='command'))\n"
        "sys.exit(run_config_command(parser.parse_args(sys.argv[1:])))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        cwd=REPO,
        timeout=120,
    )


def test_config_check_command_valid_and_invalid(tmp_path: Path) -> None:
    ok = _warden(
        "config", "check", "config/devnet.yaml", "--unlock",
        env={"WARDEN_DEVNET_KEY": DEVNET_KEY},
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "mode: devnet" in ok.stdout and f"relayer address: {DEVNET_ADDRESS}" in ok.stdout
    assert "executor.raw_key: *** (from $WARDEN_DEVNET_KEY)" in ok.stdout
    assert DEVNET_KEY[2:] not in ok.stdout + ok.stderr
    bad = write(tmp_path, "chian: {}\napi:\n  port: nope\n")
    failed = _warden("config", "check", str(bad), env={})
    assert failed.returncode == 2
    assert failed.stderr.splitlines() == [
        f"{bad}:1: chian: unknown key 'chian' in the top level; did you mean 'chain'?",
        f"{bad}:3: api.port: Input should be a valid integer, unable to parse string as an "
        "integer, got 'nope'",
        "2 problems found",
    ]


# -- environment overrides: WARDEN_<SECTION>__<KEY> --------------------------------------------
def test_env_override_beats_the_file_and_is_masked(tmp_path: Path) -> None:
    text = "executor:\n  max_batch_size: 20\n"
    env = {"WARDEN_EXECUTOR__MAX_BATCH_SIZE": "50", "warden_api__port": "9001"}
    cfg = load_config(write(tmp_path, text), env)
    assert (cfg.executor.max_batch_size, cfg.api.port) == (50, 9001)
    described = cfg.describe()
    assert "executor.max_batch_size: *** (from $WARDEN_EXECUTOR__MAX_BATCH_SIZE)" in described
    assert "api.port: *** (from $warden_api__port)" in described


def test_env_override_lists_are_json_and_secrets_and_bools_coerce(tmp_path: Path) -> None:
    env = {
        "WARDEN_CHAIN__RPC": '["https://a.example/key1", "https://b.example"]',
        "WARDEN_CHAIN__CHAIN_ID": "1",
        "WARDEN_CHAIN__FACTORY": FACTORY,
        "WARDEN_EXECUTOR__RELAYER": DEVNET_ADDRESS,
        "WARDEN_API__TOKEN": SECRET,
        "WARDEN_LOGGING__JSON": "true",
    }
    cfg = load_config(write(tmp_path, "api:\n  token: file-token\n"), env)
    assert cfg.chain.rpc == ["https://a.example/key1", "https://b.example"]
    assert cfg.confirmations == 2 and cfg.logging.json_lines
    assert cfg.api.token is not None and cfg.api.token.get_secret_value() == SECRET
    described = "\n".join(cfg.describe())
    assert "key1" not in described and SECRET not in described
    assert "chain.rpc: *** (from $WARDEN_CHAIN__RPC)" in described


def test_env_override_token_file_replaces_the_file_token(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET + "\n")
    env = {"WARDEN_API__TOKEN_FILE": "token"}
    cfg = load_config(write(tmp_path, "api:\n  token: file-token\n"), env)
    assert cfg.api.token is not None and cfg.api.token.get_secret_value() == SECRET


def test_bad_env_override_names_the_variable_not_the_value(tmp_path: Path) -> None:
    path = write(tmp_path, "api:\n  port: 8081\n")
    env = {
        "WARDEN_EXECUTOR__MAX_BATCH_SIZE": "1000",
        "WARDEN_API__PORT": "hunter2",
        "WARDEN_CHAIN__POLL_INTERVAL": "s3cr3t",
        "WARDEN_CHAIN__RPC": "not-json",
    }
    with pytest.raises(ConfigError) as caught:
        load_config(path, env)
    found = caught.value.problems
    assert found == [
        "$WARDEN_API__PORT: api.port: Input should be a valid integer, unable to parse string "
        "as an integer",
        "$WARDEN_CHAIN__POLL_INTERVAL: chain.poll_interval: expected a number of seconds, not ***",
        '$WARDEN_CHAIN__RPC: chain.rpc: expected a JSON list, e.g. ["a", "b"]',
        "$WARDEN_EXECUTOR__MAX_BATCH_SIZE: executor.max_batch_size: *** is outside 1 to 256 — "
        "SessionWalletFactory.closeBatch takes at most 256",
    ]
    for secret in ("1000", "hunter2", "s3cr3t", "not-json"):
        assert all(secret not in p for p in found)


def test_unknown_env_override_is_refused_by_name(tmp_path: Path) -> None:
    env = {
        "WARDEN_EXECUTOR__MAX_BATCH_SIZ": "50",
        "WARDEN_CHIAN__RPC": "[]",
        "WARDEN_DEVNET_KEY": DEVNET_KEY,  # no `__`: only read through ${WARDEN_DEVNET_KEY}
    }
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, ""), env)
    assert caught.value.problems == [
        "$WARDEN_CHIAN__RPC: chian: unknown key 'chian' in the top level; did you mean 'chain'?",
        "$WARDEN_EXECUTOR__MAX_BATCH_SIZ: executor.max_batch_siz: unknown key 'max_batch_siz' "
        "in executor; did you mean 'max_batch_size'?",
    ]


def test_devnet_flag_decides_for_a_devnet(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, PROD + DRY), {}, devnet=True)
    assert cfg.is_devnet and cfg.confirmations == 0
