"""The daemon's configuration: YAML read with positions, validated by pydantic models, with
secrets taken from the environment or files, and the builders that turn it into the
packages' own config objects.

`load_config(path, environ)` reports every problem at once as
``FILE:LINE: key.path: message — fix`` in a `ConfigError`. Defaults are the safe ones: the
API on 127.0.0.1, dry-run unless a relayer key is configured, confirmations above 0 except
on a devnet. Relative paths are taken from the config file's directory, so a config means
the same thing whatever directory Warden starts in.

Secrets: any string value may be a whole ``${NAME}`` reference (read from `environ`);
`api.token_file` and `executor.raw_key_file` fill `api.token` and `executor.raw_key` from
a file. Secret values are `SecretStr`: repr, `model_dump` and `describe()` show them masked,
and no error message quotes a value that came from a secret.

Errors, grouped by what the caller should do:

    executor.ConfigError        give up at start, exit 2: a person must fix the config
    ├── ConfigError             this module: the file (every problem in `.problems`)
    └── executor.SignerError    `load_signer`: keystore unreadable, wrong password
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
)
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError

from chain import RetryPolicy
from chain.fields import Bool, ConfigPath, Int, Seconds, Section
from chain.units import format_amount, format_duration
from contracts import MAX_BATCH
from executor import ExecutorConfig, FeePolicy, Guards, Signer, SignerError, load_password
from executor.errors import ConfigError as _ExecutorConfigError
from executor.fees import GETH_MIN_BUMP_PERCENT
from executor.settings import ExecutorSettings
from executor.signer import DEVNET_CHAIN_IDS
from indexer import IndexerConfig, RangeSizing
from indexer.settings import ChainSettings
from warden.app.api import is_loopback

ANVIL_CHAIN_ID = 31337  # what `Anvil` starts by default: the chain id of devnet mode


class ConfigError(_ExecutorConfigError):
    """The config file cannot be used; `.problems` holds every reason, one line each."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class RulesConfig(Section):
    files: list[ConfigPath] = Field(default=[Path("rules")], validate_default=True)
    decimals: Int | None = None  # None: each token's decimals() read on chain


class ApiConfig(Section):
    enabled: Bool = True
    host: str = "127.0.0.1"
    port: Int = 8080
    token: SecretStr | None = None  # required beyond loopback


class LoggingConfig(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    level: Literal["debug", "info", "warning", "error"] = "info"
    # `json` in the file (the name would shadow a pydantic method): one object per line
    json_lines: Bool = Field(default=False, alias="json")


class DevnetConfig(Section):
    block_time: Seconds = 1.0
    activity: Bool = True
    state_cache: ConfigPath | None = None


class WardenConfig(Section):
    chain: ChainSettings = ChainSettings()
    database: ConfigPath = Field(default=Path("warden.sqlite"), validate_default=True)
    rules: RulesConfig = RulesConfig()
    executor: ExecutorSettings = ExecutorSettings()
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()
    devnet: DevnetConfig = DevnetConfig()

    # dotted key -> where its value came from ("$NAME" or "file PATH"), for describe()
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)

    # -- resolved values --------------------------------------------------------------
    @property
    def is_devnet(self) -> bool:
        """No RPC endpoint: Warden starts anvil and deploys its own contracts."""
        return not self.chain.rpc

    @property
    def local_chain(self) -> bool:
        """A devnet, or an endpoint that says it serves one (anvil, hardhat, geth --dev)."""
        return self.is_devnet or self.chain.chain_id in DEVNET_CHAIN_IDS

    @property
    def confirmations(self) -> int:
        if self.chain.confirmations is not None:
            return self.chain.confirmations
        return 0 if self.local_chain else 2

    @property
    def dry_run(self) -> bool:
        if self.executor.dry_run is not None:
            return self.executor.dry_run
        return not self.executor.has_key

    # -- builders ------------------------------------------------------------------------
    def indexer_config(self, factory: str) -> IndexerConfig:
        c = self.chain
        return IndexerConfig(
            factory=factory,
            start_block=c.start_block,
            confirmations=self.confirmations,
            reorg_window=c.reorg_window,
            concurrency=c.concurrency,
            sizing=RangeSizing(initial=min(c.log_range, c.max_log_range), maximum=c.max_log_range),
        )

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(initial=self.chain.retry_initial, attempts=self.chain.retry_attempts)

    def guards(self) -> Guards:
        e = self.executor
        return Guards(
            max_batch_size=e.max_batch_size,
            min_relayer_balance=e.min_relayer_balance,
            intent_ttl=e.intent_ttl,
            max_jobs_per_session=e.max_jobs_per_session,
            rate_window_ms=e.rate_window * 1000,
            batch_tokens=None if e.batch_tokens is None else frozenset(e.batch_tokens),
        )

    def fee_policy(self) -> FeePolicy:
        e = self.executor
        return FeePolicy(
            base_fee_multiplier=e.base_fee_multiplier,
            tip_percentile=e.tip_percentile,
            min_tip=e.min_tip,
            max_fee_per_gas=e.max_fee_per_gas,
            replacement_bump_percent=e.replacement_bump_percent,
        )

    def executor_config(self, factory: str, chain_id: int) -> ExecutorConfig:
        return ExecutorConfig(
            factory=factory,
            chain_id=chain_id,
            guards=self.guards(),
            fees=self.fee_policy(),
            replace_after_blocks=self.executor.replace_after_blocks,
            gas_margin_percent=self.executor.gas_margin_percent,
            dry_run=self.dry_run,
        )

    def load_signer(
        self, environ: Mapping[str, str], *, chain_id: int | None = None
    ) -> Signer | None:
        """The relayer's key, or None in dry-run. `chain_id` is the chain actually served
        (devnet mode: anvil's); it defaults to `chain.chain_id`, then anvil's 31337.
        Raises `executor.SignerError` naming the file or variable to fix."""
        if self.dry_run:
            return None
        e = self.executor
        chain = chain_id if chain_id is not None else self.chain.chain_id or ANVIL_CHAIN_ID
        if e.raw_key is not None:
            return Signer.from_raw_key(e.raw_key.get_secret_value(), chain_id=chain)
        assert e.keystore is not None  # load_config refuses dry_run false without a key
        password = load_password(
            e.password_env, None if e.password_file is None else str(e.password_file), environ
        )
        return Signer.from_keystore(e.keystore, password)

    def relayer_source(self) -> str:
        """How the relayer signs, in words (no secret)."""
        e = self.executor
        if self.dry_run:
            who = f"relayer {e.relayer}" if e.relayer else "the devnet operator"
            return f"dry-run: transactions are built and preflighted as {who}, never sent"
        if e.raw_key is not None:
            where = self._sources.get("executor.raw_key", "the config file")
            return f"raw private key from {where} (devnet only)"
        password = f"${e.password_env}" if e.password_env else f"file {e.password_file}"
        return f"keystore {e.keystore}, password from {password}"

    def describe(self) -> list[str]:
        """Every key with its resolved value, one `key.path: value` line each, secrets and
        values taken from the environment masked: safe to print and to log."""
        return list(_describe(self.model_dump(mode="python", by_alias=True), (), self._sources))

    def warnings(self) -> list[str]:
        """Valid but probably not what was meant."""
        out: list[str] = []
        e = self.executor
        if e.max_fee_per_gas is not None and e.max_fee_per_gas < e.min_tip:
            out.append(
                f"executor.max_fee_per_gas ({format_amount(e.max_fee_per_gas)}) is below "
                f"executor.min_tip ({format_amount(e.min_tip)}): every send waits for the cap"
            )
        if not self.local_chain and self.confirmations < 2:
            out.append(
                f"chain.confirmations is {self.confirmations}: a one-block reorg can undo what "
                "Warden acted on; 2 or more is safer"
            )
        if not self.local_chain and self.confirmations > self.chain.reorg_window:
            out.append("chain.confirmations is above chain.reorg_window")
        if self.dry_run and e.has_key:
            out.append("executor.dry_run is true although a key is configured: nothing is sent")
        if not self.api.enabled and self.api.token is not None:
            out.append("api.token is set but the API is disabled")
        return out


_SECRET_FILES: dict[tuple[str | int, ...], str] = {
    ("api",): "token",
    ("executor",): "raw_key",
}  # section -> secret from *_file
_SECTIONS = ("chain", "rules", "executor", "api", "logging", "devnet")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def load_config(path: str | Path, environ: Mapping[str, str]) -> WardenConfig:
    """The validated config in `path`; `ConfigError` with every problem otherwise."""
    file = Path(path)
    base = file.resolve().parent
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ConfigError([f"{file}:1: cannot read the config file: {reason}"]) from None
    doc = _read_yaml(file, text)
    out: list[tuple[int, str]] = []
    failed: list[tuple[str | int, ...]] = []

    def report(where: tuple[str | int, ...], message: str) -> None:
        line = _line_of(doc, where)
        failed.append(where)
        out.append((line, f"{file}:{line}: {_dotted(where) or '(top level)'}: {message}"))

    sources: dict[str, str] = {}
    data = _substitute(doc, (), environ, base, report, sources)
    for where in failed:
        _remove(data, where)
    for section in _SECTIONS:  # so that their defaults resolve relative paths too
        if isinstance(data, dict) and section not in data:
            data[section] = {}
    cfg: WardenConfig | None = None
    # Each round drops the keys that failed, so the next one finds the problems behind
    # them and the cross-key checks still run: every problem is reported in one go.
    for _ in range(10):
        try:
            cfg = WardenConfig.model_validate(data, context={"base": base})
            break
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                where, message = _explain(err, sources)
                report(where, message)
                _remove(data, where)
    if cfg is not None:
        cfg._sources = sources
        broken = list(failed)
        for where, message in _cross_checks(cfg, environ):
            if not any(where[: len(f)] == f or f[: len(where)] == where for f in broken):
                report(where, message)
    if out or cfg is None:
        raise ConfigError([text for _, text in sorted(out, key=lambda item: item[0])])
    return cfg


def _remove(data: Any, where: tuple[str | int, ...]) -> None:
    """Drop the key at `where` (a list item: the whole list) so its default applies."""
    while where and isinstance(where[-1], int):
        where = where[:-1]
    node = data
    for part in where[:-1]:
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if where and isinstance(node, dict):
        node.pop(where[-1], None)


def _substitute(
    node: Any,
    where: tuple[str | int, ...],
    environ: Mapping[str, str],
    base: Path,
    report: Any,
    sources: dict[str, str],
) -> Any:
    """Plain Python data with `${NAME}` and `*_file` secrets resolved, problems reported."""
    if isinstance(node, dict):
        result: dict[str, Any] = {}
        secret = _SECRET_FILES.get(where)
        for key, value in node.items():
            result[str(key)] = _substitute(value, (*where, key), environ, base, report, sources)
        if secret is not None and f"{secret}_file" in result:
            file_value = result.pop(f"{secret}_file")
            if secret in result:
                report((*where, f"{secret}_file"), f"set {secret} or {secret}_file, not both")
            elif isinstance(file_value, str):
                content = _read_secret(base / file_value, (*where, f"{secret}_file"), report)
                if content is not None:
                    result[secret] = content
                    sources[_dotted((*where, secret))] = f"file {base / file_value}"
        return result
    if isinstance(node, list):
        return [
            _substitute(v, (*where, i), environ, base, report, sources) for i, v in enumerate(node)
        ]
    if isinstance(node, str) and "${" in node:
        match = _ENV_REF.fullmatch(node.strip())
        if match is None:
            report(
                where,
                "a ${NAME} reference must be the whole value — put the complete value in the "
                'environment variable and write just "${NAME}"',
            )
            return node
        name = match.group(1)
        if name not in environ:
            report(where, f"environment variable {name} is not set — export it before starting")
            return node
        sources[_dotted(where)] = f"${name}"
        return environ[name]
    return node


def _read_secret(path: Path, where: tuple[str | int, ...], report: Any) -> str | None:
    try:
        content = path.read_text(encoding="utf-8").removesuffix("\n").removesuffix("\r")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        report(where, f"cannot read {path}: {reason} — check the path (relative to the config)")
        return None
    if not content:
        report(where, f"{path} is empty — write the secret in it")
        return None
    return content


def _explain(err: Any, sources: Mapping[str, str]) -> tuple[tuple[str | int, ...], str]:
    """A pydantic error as (key path, message with its fix)."""
    loc = tuple(err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, key = loc[:-1], str(loc[-1])
        names = _field_names(parent)
        where = " ".join(map(str, parent)) or "the top level"
        close = difflib.get_close_matches(key, names, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(names)}"
        return loc, f"unknown key '{key}' in {where}; {hint}"
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind in ("model_type", "dict_type"):
        return loc, f"expected a mapping of keys under it, found {_kind(err['input'])}"
    if kind == "list_type":
        return loc, f"expected a list (`- item` lines or [a, b]), found {_kind(err['input'])}"
    if kind == "literal_error":
        return loc, f"{message} — use one of them"
    if kind.startswith(("int_", "float_", "bool_", "string_")):
        secret = _dotted(loc) in sources or any(p in ("raw_key", "token") for p in map(str, loc))
        shown = "" if secret else f", got {err['input']!r}"
        return loc, f"{message}{shown}"
    return loc, message


def _field_names(loc: tuple[str | int, ...]) -> list[str]:
    model: Any = WardenConfig
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None or not isinstance(field.annotation, type):
            return []
        model = field.annotation
    names = [field.alias or name for name, field in model.model_fields.items()]
    if model in (ApiConfig, ExecutorSettings):
        names.append("token_file" if model is ApiConfig else "raw_key_file")
    return names


def _cross_checks(
    cfg: WardenConfig, environ: Mapping[str, str]
) -> list[tuple[tuple[str | int, ...], str]]:
    """Rules that involve more than one key or the file system."""
    out: list[tuple[tuple[str | int, ...], str]] = []
    c, api = cfg.chain, cfg.api
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
    for key, low in (("start_block", 0), ("confirmations", 0), ("reorg_window", 1),
                     ("concurrency", 1), ("log_range", 1), ("max_log_range", 1),
                     ("retry_attempts", 1)):  # fmt: skip
        value = getattr(c, key)
        if value is not None and value < low:
            out.append((("chain", key), f"must be at least {low}, not {value}"))
    if c.confirmations is not None and c.confirmations >= c.reorg_window:
        out.append(
            (("chain", "confirmations"), f"must be below chain.reorg_window ({c.reorg_window}) "
             "— raise reorg_window")
        )  # fmt: skip
    if cfg.rules.decimals is not None and not 0 <= cfg.rules.decimals <= 77:
        out.append((("rules", "decimals"), "must be 0 to 77 (or leave it out to read decimals())"))
    for i, rules_path in enumerate(cfg.rules.files):
        if not rules_path.exists():
            out.append(
                (("rules", "files", i), f"{rules_path} does not exist — check the path "
                 "(relative to the config file)")
            )  # fmt: skip
    out.extend(_key_checks(cfg, environ))
    for problem in _guard_problems(cfg):
        out.append(problem)
    if not 0 <= api.port <= 65535:
        out.append((("api", "port"), f"{api.port} is not a TCP port (0 to 65535)"))
    if api.enabled and api.token is None and not is_loopback(api.host):
        out.append(
            (("api", "token"), f"required because api.host {api.host!r} is not loopback: the API "
             "shows every session — set api.token (\"${WARDEN_API_TOKEN}\") or api.token_file, "
             "or bind to 127.0.0.1")
        )  # fmt: skip
    return out


def _key_checks(
    cfg: WardenConfig, environ: Mapping[str, str]
) -> list[tuple[tuple[str | int, ...], str]]:
    out: list[tuple[tuple[str | int, ...], str]] = []
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
        out.append(
            ((ex, "password_env"), f"environment variable {e.password_env} is not set — export "
             "the keystore password in it before starting")
        )  # fmt: skip
    if e.password_file is not None and not e.password_file.is_file():
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


def _raw_key_problem(key: str, relayer: str | None) -> str | None:
    try:
        signer = Signer(bytes.fromhex(key.strip().removeprefix("0x")))
    except (ValueError, SignerError):
        return "not a private key: 32 bytes of hex (64 digits, optional 0x)"
    if relayer is not None and signer.address != relayer:
        return f"its address is {signer.address}, not executor.relayer {relayer} — fix either"
    return None


def _keystore_problems(path: Path, relayer: str | None) -> list[tuple[tuple[str | int, ...], str]]:
    where = ("executor", "keystore")
    try:
        keystore = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8"
        return [(where, f"cannot read {path}: {reason} — check the path")]
    except ValueError:
        return [(where, f"{path} is not JSON — it must be an encrypted keystore")]
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


def _guard_problems(cfg: WardenConfig) -> list[tuple[tuple[str | int, ...], str]]:
    """The executor's own limits, reported against the key that breaks them."""
    e = cfg.executor
    limits = {
        "max_batch_size": (1, MAX_BATCH, "SessionWalletFactory.closeBatch takes at most 256"),
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
    }
    out: list[tuple[tuple[str | int, ...], str]] = []
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


def _describe(value: Any, where: tuple[str, ...], sources: Mapping[str, str]) -> Any:
    key = ".".join(where)
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _describe(v, (*where, k), sources)
        return
    if key in sources:
        yield f"{key}: *** (from {sources[key]})"
    elif isinstance(value, SecretStr):
        yield f"{key}: ***"
    elif where[-1] in ("min_relayer_balance", "max_fee_per_gas", "min_tip") and value is not None:
        yield f"{key}: {format_amount(value)} ({value} wei)"
    elif where[-1] in ("intent_ttl", "rate_window"):
        yield f"{key}: {format_duration(value)}"
    elif isinstance(value, list):
        items = [
            f"*** (from {sources[f'{key}[{i}]']})" if f"{key}[{i}]" in sources else str(v)
            for i, v in enumerate(value)
        ]
        yield f"{key}: [{', '.join(items)}]"
    else:
        yield f"{key}: {'null' if value is None else value}"


def _dotted(where: tuple[str | int, ...]) -> str:
    text = ""
    for part in where:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _read_yaml(file: Path, text: str) -> Any:
    """The document as ruamel's position-carrying mapping ({} for an empty file)."""
    try:
        doc = YAML(typ="rt").load(text)
    except DuplicateKeyError as exc:
        key = re.search(r'duplicate key "([^"]*)"', str(exc.problem))
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        shown = key.group(1) if key else "?"
        raise ConfigError(
            [f"{file}:{line}: {shown}: duplicate key in one mapping — keep only one of them"]
        ) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        raise ConfigError(
            [f"{file}:{line}: YAML syntax error: {exc.problem} — check quotes and indentation"]
        ) from None
    if doc is None:
        return CommentedMap()
    if not isinstance(doc, CommentedMap):
        raise ConfigError(
            [f"{file}:1: (top level): expected a mapping of sections (chain:, executor:, ...), "
             f"found {_kind(doc)}"]
        )  # fmt: skip
    return doc


def _line_of(doc: Any, where: tuple[str | int, ...]) -> int:
    """The line of the deepest part of `where` present in the file (1 when none is)."""
    line, node = 1, doc
    for part in where:
        if isinstance(node, CommentedMap) and part in node:
            line = node.lc.key(part)[0] + 1
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line = node.lc.item(part)[0] + 1
        else:
            break
        node = node[part]
    return line


def _network(cfg: WardenConfig) -> str:
    chain_id = cfg.chain.chain_id
    return "a network other than a devnet" if chain_id is None else f"chain {chain_id}"
