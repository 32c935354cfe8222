"""`warden run --config FILE [--devnet]`: load the config, start a devnet when there is no
RPC URL, and run the daemon under uvloop.

Exit codes: 0 after a clean shutdown, 2 for a configuration problem (the message names
the key and the fix), 1 for a runtime failure (a wrong chain, a node that never answers),
3 when the database cannot be written (disk full, read-only, I/O error: an ERROR line
names the cause and the file; restart once fixed), 130 when a second signal forced the
exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import sqlite3
import sys
from collections.abc import Iterator
from pathlib import Path

import uvloop
from web3 import Web3

from chain import ChainClient, ChainError
from chain.urls import redact_url, url_secrets
from executor import Signer, SignerError
from rules import RulesError, check_files
from warden.app.daemon import Daemon
from warden.app.logs import setup_logging
from warden.app.settings import (
    ANVIL_CHAIN_ID,
    ConfigError,
    WardenConfig,
    load_config,
    where,
)
from warden.app.storage import STORAGE_EXIT, storage_problem
from warden.app.target import Target
from warden.cli.exit_codes import ExitCode
from warden.devnet import Anvil, Deployment, DevnetError, deploy_stack
from warden.devnet.activity import Activity

log = logging.getLogger("warden.run")

DEFAULT_CONFIG = "config/devnet.yaml"


def add_run_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = sub.add_parser(
        "run",
        help="run the daemon: index, evaluate rules, send relayer transactions, serve the API",
        description="Run Warden: follow the chain, index every session of the factory, "
        "evaluate the rule files on every change and as chain time passes, and send each "
        "resulting close exactly once. With no RPC URL in the config (or --devnet) it starts "
        "a local anvil, deploys the contracts and, if devnet.activity is on, opens and moves "
        "demo sessions so every rule fires within minutes. SIGTERM/SIGINT stop it in order "
        "(twice forces), SIGHUP reloads the rule files.",
    )
    run.add_argument(
        "--config", default=DEFAULT_CONFIG, help=f"daemon config (YAML; default {DEFAULT_CONFIG})"
    )
    run.add_argument(
        "--devnet", action="store_true", help="ignore the configured RPC URLs: start a devnet"
    )


def run_run_command(args: argparse.Namespace) -> int:
    """Everything `warden config check --unlock` refuses is refused here too, before
    anything starts (no anvil, no database, no socket), with the same FILE:LINE lines."""
    try:
        cfg = load_config(args.config, os.environ, devnet=args.devnet)
        setup_logging(cfg.logging.level, json=cfg.logging.json_lines, secrets=_secrets(cfg))
        for warning in cfg.warnings():
            log.warning("config: %s", warning)
        problems, _ = check_files(cfg.rules.files)
        if problems:
            raise ConfigError([f"rules: {problem}" for problem in problems])
        chain_id = cfg.chain.chain_id if not cfg.is_devnet else None
        signer = cfg.unlock(os.environ, chain_id=chain_id or ANVIL_CHAIN_ID)
    except ConfigError as exc:
        print(f"warden run: {args.config} has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return ExitCode.CONFIG
    try:
        code = uvloop.run(_run(cfg, signer))
    except (ConfigError, SignerError) as exc:
        log.error("configuration: %s", exc)
        return ExitCode.CONFIG
    except RulesError as exc:  # the first load: nothing to keep running, so stop here
        log.error("rule files have %d problem(s); not starting", len(exc.problems))
        for rule_problem in exc.problems:  # one line each: FILE:LINE:COLUMN: what, the fix
            log.error("rules: %s", rule_problem)
        return ExitCode.CONFIG
    except (sqlite3.Error, OSError) as exc:  # outside the daemon: the devnet's database move
        storage = storage_problem(exc, where(cfg.database))
        if storage is None and isinstance(exc, sqlite3.Error):
            raise
        log.error("cannot run: %s", storage or exc)
        return ExitCode.STORAGE if storage else ExitCode.RUNTIME_FAILURE
    except (DevnetError, ChainError) as exc:
        log.error("cannot run: %s", exc)
        return ExitCode.RUNTIME_FAILURE
    return ExitCode.STORAGE if code == STORAGE_EXIT else code


def _secrets(cfg: WardenConfig) -> list[str]:
    """What the log redaction masks: the key, the token, the keystore password and every
    part of an RPC URL that may hold a provider's key."""
    e = cfg.executor
    found = [s.get_secret_value() for s in (e.raw_key, cfg.api.token) if s is not None]
    if e.password_env and os.environ.get(e.password_env):
        found.append(os.environ[e.password_env])
    for url in cfg.chain.rpc:
        found.extend(url_secrets(url))
    if cfg.chain.new_heads not in ("auto", "off"):
        found.extend(url_secrets(cfg.chain.new_heads))
    return found


async def _run(cfg: WardenConfig, signer: Signer | None) -> int:
    if not cfg.is_devnet:
        assert cfg.chain.factory is not None and cfg.chain.chain_id is not None
        target = make_target(cfg, cfg.chain.rpc, cfg.chain.factory, cfg.chain.chain_id, signer)
        return await Daemon(cfg, target).run()
    with _devnet(cfg) as (anvil, deployment):
        target = make_target(
            cfg, [anvil.url], deployment.factory, deployment.chain_id, signer, deployment
        )
        # Nothing before the contracts' deployment holds a session.
        start = max(cfg.chain.start_block, deployment.block)
        cfg = cfg.model_copy(update={"chain": cfg.chain.model_copy(update={"start_block": start})})
        activity = None
        if cfg.devnet.activity:
            client = ChainClient([anvil.url], chain_id=deployment.chain_id)
            owners = list(Web3(Web3.HTTPProvider(anvil.url)).eth.accounts)[3:9]
            activity = _ClosingActivity(
                client,
                Activity(
                    client, deployment, deployment.operator, owners, random.Random(),
                    logging.getLogger("warden.activity"), decimals=cfg.rules.decimals or 18,
                ),
            )  # fmt: skip
        return await Daemon(cfg, target, activity=activity).run()


class _ClosingActivity:
    """The activity generator with its own RPC session, closed when it stops."""

    def __init__(self, client: ChainClient, activity: Activity) -> None:
        self.client = client
        self.activity = activity

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self.activity.run(stop)
        finally:
            await self.client.close()


@contextlib.contextmanager
def _devnet(cfg: WardenConfig) -> Iterator[tuple[Anvil, Deployment]]:
    # devnet.state_cache is refused by load_config (not supported yet)
    if not isinstance(cfg.database, Path):
        raise ConfigError(
            [f"database: a devnet is a new chain every run; give it a SQLite file, not "
             f"{cfg.database}"]
        )  # fmt: skip
    _fresh_database(cfg.database)
    with Anvil(block_time=cfg.devnet.block_time) as anvil:
        w3 = Web3(Web3.HTTPProvider(anvil.url))
        accounts: list[str] = list(w3.eth.accounts)
        deployment = deploy_stack(
            w3, deployer=accounts[0], operator=accounts[1], treasury=accounts[2]
        )
        log.info(
            "devnet: %s (chain id %d): factory %s, token %s, game %s, operator %s",
            anvil.url, deployment.chain_id, deployment.factory, deployment.token,
            deployment.game, deployment.operator,
        )  # fmt: skip
        yield anvil, deployment


def _fresh_database(path: Path) -> None:
    """A devnet is a new chain every time: yesterday's database describes another one."""
    for suffix in ("", "-wal", "-shm"):
        old = Path(str(path) + suffix)
        if old.exists():
            old.replace(Path(str(path) + ".previous" + suffix))
            if not suffix:
                log.info("devnet: moved the previous devnet database to %s.previous", path)


def make_target(
    cfg: WardenConfig,
    rpc: list[str],
    factory: str,
    chain_id: int,
    signer: Signer | None,
    deployment: Deployment | None = None,
) -> Target:
    """What the daemon serves: these endpoints and contracts, and the relayer's key
    (`cfg.unlock`ed before anything started; the devnet operator's address, in dry-run
    on a devnet without `executor.relayer`)."""
    relayer = cfg.executor.relayer or (deployment.operator if deployment else None)
    log.info(
        "chain %d via %s", chain_id, ", ".join(redact_url(url) for url in rpc)
    )  # never the full URL: its path usually holds the provider's key
    if signer is not None:
        log.info("relayer %s (%s)", signer.address, cfg.relayer_source())
    elif relayer is None:
        raise ConfigError(
            ["executor.relayer: dry-run without a key needs the relayer address to preflight "
             "as; set executor.relayer or configure a keystore"]
        )  # fmt: skip
    return Target(tuple(rpc), factory, chain_id, signer, relayer)
