"""The rules that involve more than one key, the file system or the key material: run
once every key is valid on its own, each problem reported against the key to fix."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path

from chain.calls import CANCEL_GAS
from contracts import MAX_BATCH, MAX_MEMBER_GAS, MIN_MEMBER_GAS
from executor import Signer, SignerError
from executor.fees import GETH_MIN_BUMP_PERCENT
from warden.app.api import is_loopback
from warden.app.settings.database import DatabaseUrl
from warden.app.settings.models import WardenConfig

Problem = tuple[tuple[str | int, ...], str]  # (key path, message with its fix)

MIN_REMOTE_TOKEN = 32  # characters of an API token beyond loopback (openssl rand -hex 16)
SQLITE_HEADER = b"SQLite format 3\x00"
MAX_READ_CONNECTIONS = 64  # api.read_connections: SQLite threads or PostgreSQL connections
MAX_READ_QUEUE = 100_000  # api.read_queue
MAX_READ_WAIT = 60.0  # api.read_wait, seconds
# EIP-2294: the largest chain id every tool handles (a JavaScript safe integer, after v).
MAX_CHAIN_ID = 4_503_599_627_370_476
_INT64 = 2**63 - 1  # SQLite's integers: a larger block number cannot be stored
SINGLE_CLOSE_MIN_GAS = 50_000  # below it even an honest close alone could not be sent
BLOCK_GAS = 30_000_000  # a gas limit above a block's is no cap
_CHAIN_LIMITS = {
    "chain_id": (1, MAX_CHAIN_ID),
    "start_block": (0, _INT64),
    "confirmations": (0, 1_000_000),
    "reorg_window": (1, 1_000_000),
    "concurrency": (1, 1_000),
    "log_range": (1, 10**9),
    "max_log_range": (1, 10**9),
    "log_target": (1, 10**7),
    "retry_attempts": (1, 1_000),
}
_CHAIN_WHY = {
    "chain_id": " (EIP-2294)",
    "start_block": " (SQLite stores 64-bit integers)",
    "retry_attempts": " — the backoff would overflow; retries already span minutes",
}


def cross_checks(cfg: WardenConfig, environ: Mapping[str, str]) -> list[Problem]:
    """Rules that involve more than one key or the file system."""
    out: list[Problem] = []
    c = cfg.chain
    for i, url in enumerate(c.rpc):
        if not url.startswith(("http://", "https://")):
            out.append((("chain", "rpc", i), "an RPC endpoint is an http:// or https:// URL"))
    if not cfg.is_devnet:
        if c.chain_id is None:
            out.append(
                (("chain", "chain_id"), "required when chain.rpc is set — write the network's "
                 "chain id (1 for Ethereum mainnet) so Warden refuses a wrong endpoint")
            )  # fmt: skip
        if c.factory is None:
            out.append(
                (("chain", "factory"), "required when chain.rpc is set — write the address of "
                 "the SessionWalletFactory to index")
            )  # fmt: skip
    if c.confirmations == 0 and not cfg.local_chain:
        out.append(
            (("chain", "confirmations"), f"0 is refused on {_network(cfg)}: Warden would act "
             "on blocks a reorg can remove — use 2 or more (0 is for devnets)")
        )  # fmt: skip
    for key, (low, high) in _CHAIN_LIMITS.items():
        value = getattr(c, key)
        if value is not None and value < low:
            out.append((("chain", key), f"must be at least {low}, not {value}"))
        elif value is not None and value > high:
            out.append((("chain", key), f"must be at most {high:,}{_CHAIN_WHY.get(key, '')}"))
    # Only a value the file wrote: the decided default is below any valid window.
    if "confirmations" in c.model_fields_set and cfg.confirmations >= c.reorg_window:
        out.append(
            (("chain", "confirmations"), f"must be below chain.reorg_window ({c.reorg_window}) "
             "— raise reorg_window")
        )  # fmt: skip
    if cfg.rules.decimals is not None and not 0 <= cfg.rules.decimals <= 77:
        out.append((("rules", "decimals"), "must be 0 to 77 (or leave it out to read decimals())"))
    for i, rules_path in enumerate(cfg.rules.files):
        unusable = _unusable(rules_path)
        if unusable:
            out.append((("rules", "files", i), unusable))
        elif not rules_path.exists():
            out.append(
                (("rules", "files", i), f"{rules_path} does not exist — check the path "
                 "(relative to the config file)")
            )  # fmt: skip
    out.extend(_key_checks(cfg, environ))
    out.extend(_guard_problems(cfg))
    out.extend(_database_problems(cfg.database))
    lead = cfg.leadership
    if not 1 <= lead.ttl <= 300:
        out.append((("leadership", "ttl"), f"{lead.ttl:g} s — use 1 to 300 s (default 6)"))
    elif not 0 < lead.margin < lead.ttl / 2:
        out.append((
            ("leadership", "margin"),
            f"{lead.margin:g} s — it must be above 0 and below half of leadership.ttl "
            f"({lead.ttl:g} s), or a leader could send after a standby took over",
        ))  # fmt: skip
    out.extend(_api_problems(cfg))
    out.extend(_backup_problems(cfg))
    audit = cfg.audit
    if audit.interval != 0 and not 10 <= audit.interval <= 604_800:
        out.append(
            (("audit", "interval"), f"{audit.interval:g} s — use 10 to 604800 s (default 600), "
             "or 0 to turn the balance audit off")
        )  # fmt: skip
    if not 1 <= audit.page <= 2_000:
        out.append(
            (("audit", "page"), f"{audit.page} — audit 1 to 2,000 sessions per loop step "
             "(default 200: one batched request to the node each)")
        )  # fmt: skip
    if cfg.devnet.state_cache is not None:
        # `run` has no state cache yet; refused here so that check and run agree.
        out.append(
            (("devnet", "state_cache"), "not supported yet — remove it (each devnet run "
             "starts a fresh anvil)")
        )  # fmt: skip
    return out


def _api_problems(cfg: WardenConfig) -> list[Problem]:
    """What `run` would refuse when it binds the HTTP API. The token is never quoted."""
    api = cfg.api
    out: list[Problem] = []
    if not 0 <= api.port <= 65535:
        out.append((("api", "port"), f"{api.port} is not a TCP port (0 to 65535)"))
    if not 1 <= api.read_connections <= MAX_READ_CONNECTIONS:
        out.append(
            (("api", "read_connections"), f"{api.read_connections} — use 1 to "
             f"{MAX_READ_CONNECTIONS} connections (default 4; more than the machine's cores "
             "rarely helps)")
        )  # fmt: skip
    if not 0 <= api.read_queue <= MAX_READ_QUEUE:
        out.append(
            (("api", "read_queue"), f"{api.read_queue} — use 0 to {MAX_READ_QUEUE:,} "
             "waiting requests (default 512; 0 refuses any request that finds every "
             "connection taken)")
        )  # fmt: skip
    if not 0 < api.read_wait <= MAX_READ_WAIT:
        out.append(
            (("api", "read_wait"), f"{api.read_wait:g} s — use above 0 and at most "
             f"{MAX_READ_WAIT:g} s (default 5): a client waiting longer has usually given up")
        )  # fmt: skip
    token = api.token.get_secret_value() if api.token is not None else None
    if token is not None and not token.strip():
        out.append((("api", "token"), "is empty — set a token, or remove the key"))
        return out
    if not api.enabled or is_loopback(api.host):
        return out
    if token is None:
        out.append(
            (("api", "token"), f"required because api.host {api.host!r} is not loopback: the "
             "API shows every session — set api.token (\"${WARDEN_API_TOKEN}\") or api.token_file, "
             "or bind to 127.0.0.1")
        )  # fmt: skip
    elif len(token) < MIN_REMOTE_TOKEN:
        out.append(
            (("api", "token"), f"too short for an API beyond loopback: {len(token)} "
             f"characters, at least {MIN_REMOTE_TOKEN} are needed — generate one with "
             "`openssl rand -hex 32`")
        )  # fmt: skip
    return out


def _backup_problems(cfg: WardenConfig) -> list[Problem]:
    """`backups:`: a number of backups that keeps at least the last one, and a directory
    the automatic backups can be written into."""
    b = cfg.backups
    out: list[Problem] = []
    if not 1 <= b.keep <= 1000:
        out.append(
            (("backups", "keep"), f"{b.keep} — keep 1 to 1,000 backups (default 3): a "
             "migration without its backup cannot be undone")
        )  # fmt: skip
    directory = b.directory
    if directory is None:
        return out
    unusable = _unusable(directory)
    if unusable:
        out.append((("backups", "directory"), unusable))
    elif not directory.exists():
        out.append(
            (("backups", "directory"), f"{shorten(directory)} does not exist — create it "
             "(relative paths are taken from the config file's directory)")
        )  # fmt: skip
    elif not directory.is_dir():
        out.append((("backups", "directory"), f"{shorten(directory)} is not a directory"))
    elif not os.access(directory, os.W_OK | os.X_OK):
        out.append(
            (("backups", "directory"), f"{shorten(directory)} is not writable by this user — "
             "fix its permissions or choose another directory")
        )  # fmt: skip
    return out


def _database_problems(target: Path | DatabaseUrl) -> list[Problem]:
    """What SQLite would fail on when `run` opens the database (a directory, a missing
    or read-only directory, another kind of file). A PostgreSQL URL was checked for its
    shape when it was read; whether the server answers, only `run` can tell."""
    if isinstance(target, DatabaseUrl):
        return []
    path = target
    where = ("database",)
    parent = path.parent
    unusable = _unusable(path)
    if unusable:
        return [(where, unusable)]
    if path.is_dir():
        inside = path / "warden.sqlite"
        return [(where, f"{path} is a directory — name a file in it, e.g. {inside}")]
    if not parent.is_dir():
        what = "is not a directory" if parent.exists() else "does not exist"
        return [(where, f"the directory {parent} {what} — create it or fix the path "
                        "(relative to the config file)")]  # fmt: skip
    # SQLite writes its -wal and -shm files next to the database.
    if not os.access(parent, os.W_OK | os.X_OK):
        return [(where, f"the directory {parent} is not writable by this user — SQLite "
                        "keeps its -wal and -shm files next to the database")]  # fmt: skip
    if path.exists():
        try:
            with path.open("rb") as f:
                header = f.read(16)
        except OSError as exc:
            return [(where, f"cannot read {path}: {exc.strerror} — check its permissions")]
        if header and header != SQLITE_HEADER:
            return [(where, f"{path} is not a SQLite database — name a new or a Warden "
                            "database file")]  # fmt: skip
        if not os.access(path, os.W_OK):
            return [(where, f"{path} is not writable by this user — check its permissions")]
    return []


def _unusable(path: Path) -> str | None:
    """Why no file can be at `path` (a name too long, a NUL byte, no permission to look),
    or None: it exists or may be created."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"cannot use {shorten(path)}: {exc.strerror or exc} — fix the path"
    except ValueError:
        return "a path cannot contain a NUL character — fix the path"
    return None


def shorten(path: Path, limit: int = 120) -> str:
    text = str(path)
    return text if len(text) <= limit else f"{text[: limit // 2]}…{text[-limit // 2 :]}"


def _key_checks(cfg: WardenConfig, environ: Mapping[str, str]) -> list[Problem]:
    out: list[Problem] = []
    e = cfg.executor
    ex = "executor"
    if e.raw_key is not None and e.keystore is not None:
        out.append(((ex, "raw_key"), "set executor.keystore or executor.raw_key, not both"))
    if e.raw_key is not None and not cfg.local_chain:
        out.append(
            ((ex, "raw_key"), f"a raw private key is refused on {_network(cfg)} (devnet "
             "only) — put the key in an encrypted keystore and set executor.keystore and "
             "executor.password_env or executor.password_file")
        )  # fmt: skip
    if e.raw_key is not None:
        problem = _raw_key_problem(e.raw_key.get_secret_value(), e.relayer)
        if problem:
            out.append(((ex, "raw_key"), problem))
    if e.keystore is not None:
        if (e.password_env is None) == (e.password_file is None):
            out.append(
                ((ex, "keystore"), "needs exactly one password source — set "
                 "executor.password_env (a variable name) or executor.password_file")
            )  # fmt: skip
        out.extend(_keystore_problems(e.keystore, e.relayer))
    elif e.password_env is not None or e.password_file is not None:
        key = "password_env" if e.password_env is not None else "password_file"
        out.append(((ex, key), "a password without executor.keystore — set the keystore too"))
    if e.password_env is not None and e.password_env not in environ:
        # A password typed here by mistake must not be printed back: the name is quoted
        # only when it reads like a conventional variable name.
        name = e.password_env if _VARIABLE_NAME.fullmatch(e.password_env) else "it names"
        out.append(
            ((ex, "password_env"), f"the environment variable {name} is not set — export "
             "the keystore password in it before starting (password_env holds the "
             "variable's name, never the password)")
        )  # fmt: skip
    unusable = _unusable(e.password_file) if e.password_file is not None else None
    if unusable:
        out.append(((ex, "password_file"), unusable))
    elif e.password_file is not None and not e.password_file.is_file():
        out.append(((ex, "password_file"), f"{e.password_file} does not exist — check the path"))
    if e.dry_run is False and not e.has_key:
        out.append(
            ((ex, "dry_run"), "false needs a relayer key — set executor.keystore (with a "
             "password source), or remove dry_run to run dry")
        )  # fmt: skip
    if cfg.dry_run and not e.has_key and e.relayer is None and not cfg.is_devnet:
        out.append(
            ((ex, "relayer"), "required in dry-run without a key: transactions are preflighted "
             "from it — write the relayer's address")
        )  # fmt: skip
    return out


_VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


def _raw_key_problem(key: str, relayer: str | None) -> str | None:
    try:
        signer = Signer(bytes.fromhex(key.strip().removeprefix("0x")))
    except (ValueError, SignerError):
        return "not a private key: 32 bytes of hex (64 digits, optional 0x)"
    if relayer is not None and signer.address != relayer:
        return f"its address is {signer.address}, not executor.relayer {relayer} — fix either"
    return None


def _keystore_problems(path: Path, relayer: str | None) -> list[Problem]:
    where = ("executor", "keystore")
    try:
        keystore = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        return [(where, f"cannot read {shorten(path)}: {reason} — check the path")]
    except ValueError:  # not JSON; also a path with a NUL byte
        return [(where, f"{shorten(path)} is not a JSON keystore — it must be an encrypted "
                        "keystore")]  # fmt: skip
    if not isinstance(keystore, dict) or not ({"crypto", "Crypto"} & keystore.keys()):
        return [(where, f"{path} is not an encrypted keystore (no `crypto` section)")]
    claimed = keystore.get("address")
    if (
        relayer is not None
        and isinstance(claimed, str)
        and claimed.removeprefix("0x").lower() != relayer[2:].lower()
    ):
        return [(where, f"holds address 0x{claimed}, not executor.relayer {relayer}")]
    return []


def _guard_problems(cfg: WardenConfig) -> list[Problem]:
    """The executor's own limits, reported against the key that breaks them."""
    e = cfg.executor
    limits = {
        "max_batch_size": (1, MAX_BATCH, "SessionWalletFactory.closeBatch takes at most 256"),
        "batch_member_gas": (
            MIN_MEMBER_GAS,
            MAX_MEMBER_GAS,
            "SessionWalletFactory.closeBatch refuses other stipends",
        ),
        "single_close_gas_cap": (
            SINGLE_CLOSE_MIN_GAS,
            BLOCK_GAS,
            "an honest close alone takes about 60,000 gas; no block holds more than 30,000,000",
        ),
        "max_jobs_per_session": (1, 10**6, ""),
        "base_fee_multiplier": (1, 100, ""),
        "tip_percentile": (0, 100, ""),
        "replacement_bump_percent": (
            GETH_MIN_BUMP_PERCENT,
            1000,
            "nodes refuse a replacement raising fees by less than 10%",
        ),
        "replace_after_blocks": (1, 10**6, ""),
        "gas_margin_percent": (0, 1000, ""),
        "max_mined_without_effect": (1, 100, "closes mined without effect before failing"),
        "max_gas_per_hour": (
            CANCEL_GAS,
            10**12,
            "below one transaction's gas nothing could ever be sent",
        ),
    }
    out: list[Problem] = []
    for key, (low, high, why) in limits.items():
        value = getattr(e, key)
        if not low <= value <= high:
            out.append(
                (
                    ("executor", key),
                    f"{value} is outside {low} to {high}{' — ' + why if why else ''}",
                )
            )
    if e.max_fee_per_gas == 0:
        out.append(
            (("executor", "max_fee_per_gas"), "0 would never send — remove the cap or raise it")
        )
    return out


def _network(cfg: WardenConfig) -> str:
    chain_id = cfg.chain.chain_id
    return "a network other than a devnet" if chain_id is None else f"chain {chain_id}"
