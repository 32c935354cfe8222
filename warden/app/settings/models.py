"""`WardenConfig`, the whole file as one model: the packages' own sections (`chain:` is
`indexer.ChainSettings`, `executor:` is `executor.ExecutorSettings`) and the app's.

Components take their section as it is. The two defaults that depend on other keys are
decided once, when the model is validated: `chain.confirmations` (0 on a devnet or local
chain, 2 elsewhere) and `executor.dry_run` (dry-run unless a key is configured), so every
reader sees a plain value. What the file wrote is still told apart by pydantic's
`model_fields_set` (a decided default is not in it).
"""

from __future__ import annotations

import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, Self, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from chain.fields import Bool, ConfigPath, Int, Seconds, Section, ZeroOrMore
from chain.units import format_amount
from executor import Signer, SignerError, load_password
from executor.settings import ExecutorSettings
from executor.signer import DEVNET_CHAIN_IDS
from indexer.settings import ChainSettings
from notify.settings import NotifySettings
from warden.app.settings.database import DatabaseTarget
from warden.app.settings.describe import describe
from warden.app.settings.errors import ConfigError
from warden.app.settings.secrets import mask

M = TypeVar("M", bound=BaseModel)

ANVIL_CHAIN_ID = 31337  # what `Anvil` starts by default: the chain id of devnet mode


class RulesConfig(Section):
    files: list[ConfigPath] = Field(default=[Path("rules")], validate_default=True)
    decimals: Int | None = None  # None: each token's decimals() read on chain


class ApiConfig(Section):
    enabled: Bool = True
    host: str = "127.0.0.1"
    port: Int = 8080
    token: SecretStr | None = None  # required beyond loopback
    prepare: Bool = True  # POST /prepare/...: unsigned owner transactions, checked on chain
    read_connections: Int = 4  # database connections reading at once (one per request)
    read_queue: Int = 512  # requests that may wait for one; beyond, 503 at once
    read_wait: Seconds = 5.0  # seconds a request may wait for one, then 503


class LoggingConfig(Section):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    level: Literal["debug", "info", "warning", "error"] = "info"
    # `json` in the file (the name would shadow a pydantic method): one object per line
    json_lines: Bool = Field(default=False, alias="json")


class LeadershipConfig(Section):
    """Replicas on one PostgreSQL database (docs/deployment.md); ignored on SQLite."""

    identity: str | None = None  # how this replica is named in the lease; host:pid:random
    ttl: Seconds = 6.0  # the lease: a standby may take over this long after the last renewal
    margin: Seconds = 1.5  # the leader stops sending this long before its lease could expire


class BackupsConfig(Section):
    """Backups Warden takes by itself: before a migration and before a restore replaces
    the database (docs/operations.md). `warden db backup` writes where it is told."""

    keep: Int = 3  # the newest automatic backups kept; older ones are removed
    directory: ConfigPath | None = None  # None: next to the SQLite database


class AuditConfig(Section):
    """The balance audit (`warden/app/audit.py`): indexed balances of open sessions
    against the token's `balanceOf`, at the indexed block; drift → alert.balance_drift."""

    interval: ZeroOrMore = 600.0  # seconds from the start of one full pass to the next; 0: off
    page: Int = 200  # sessions audited per loop step (one batched eth_call each)


class DevnetConfig(Section):
    block_time: Seconds = 1.0
    activity: Bool = True
    state_cache: ConfigPath | None = None


class WardenConfig(Section):
    chain: ChainSettings = ChainSettings()
    database: DatabaseTarget = Field(default=Path("warden.sqlite"), validate_default=True)
    rules: RulesConfig = RulesConfig()
    executor: ExecutorSettings = ExecutorSettings()
    api: ApiConfig = ApiConfig()
    logging: LoggingConfig = LoggingConfig()
    leadership: LeadershipConfig = LeadershipConfig()
    backups: BackupsConfig = BackupsConfig()
    devnet: DevnetConfig = DevnetConfig()
    notify: NotifySettings = NotifySettings()
    audit: AuditConfig = AuditConfig()

    # dotted key -> where its value came from ("$NAME" or "file PATH"), for describe()
    _sources: dict[str, str] = PrivateAttr(default_factory=dict)
    # dotted key -> "FILE:LINE" or "$VARIABLE", for problems found after loading
    _places: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _decide_defaults(self) -> Self:
        """Decide the defaults that depend on other keys. The sections are replaced while
        this model is still being built (it is frozen once validated); what the file set
        stays told apart in each section's `model_fields_set`."""
        chain, executor = self.chain, self.executor
        if chain.confirmations is None:
            self.__dict__["chain"] = _with(chain, confirmations=0 if self.local_chain else 2)
        if executor.dry_run is None:
            self.__dict__["executor"] = _with(executor, dry_run=not executor.has_key)
        return self

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
        """`chain.confirmations`, decided at validation: typed as the int it is."""
        assert self.chain.confirmations is not None
        return self.chain.confirmations

    @property
    def dry_run(self) -> bool:
        """`executor.dry_run`, decided at validation: typed as the bool it is."""
        assert self.executor.dry_run is not None
        return self.executor.dry_run

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
        return describe(self.model_dump(mode="python", by_alias=True), self._sources)

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
        for key, path in (("keystore", e.keystore), ("password_file", e.password_file)):
            mode = _mode(path)
            if mode & (stat.S_IRGRP | stat.S_IROTH):
                out.append(
                    f"executor.{key}: {path} is readable by other users (mode {mode:o}): the "
                    "key is only as safe as every account on this machine — chmod 600 it"
                )
        return out

    def where(self, key: str) -> str:
        """`FILE:LINE: key` or `$VARIABLE: key`: where a dotted key was set, for a problem
        found after loading (the keystore's password, at `unlock`)."""
        place = self._places.get(key) or self._places.get(key.split(".")[0], "(config)")
        return f"{place}: {key}"

    def unlock(self, environ: Mapping[str, str], *, chain_id: int | None = None) -> Signer | None:
        """`load_signer`, with a failure as the `ConfigError` `load_config` would give: at
        the line of the key to fix (the password's source when it cannot be read, the
        keystore otherwise), quoting no secret."""
        try:
            return self.load_signer(environ, chain_id=chain_id)
        except SignerError as exc:
            e = self.executor
            key = "executor.raw_key" if e.raw_key is not None else "executor.keystore"
            text = str(exc)
            if "password" in text and any(w in text for w in ("not set", "read", "empty")):
                key = "executor.password_env" if e.password_env else "executor.password_file"
            secrets = [s.get_secret_value() for s in (e.raw_key,) if s is not None]
            if e.password_env and environ.get(e.password_env):
                secrets.append(environ[e.password_env])
            raise ConfigError([f"{self.where(key)}: {mask(text, secrets, secrets)}"]) from None


def _mode(path: Path | None) -> int:
    try:
        return stat.S_IMODE(path.stat().st_mode) if path is not None else 0
    except (OSError, ValueError):
        return 0


def _with(model: M, **changes: object) -> M:
    """`model` with `changes`, keeping its record of which fields were set explicitly
    (`model_copy` would count the changes as set)."""
    values = {**dict(model), **changes}
    return type(model).model_construct(_fields_set=set(model.model_fields_set), **values)
