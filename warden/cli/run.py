"""`warden run --config FILE [--devnet]`: load the config, start a devnet when there is no
RPC URL, and run the daemon under uvloop.

Exit codes: 0 after a clean shutdown, 2 for a configuration problem (the message names
the key and the fix), 1 for a runtime failure (a wrong chain, a node that never answers),
130 when a second signal forced the exit.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import uvloop
from web3 import Web3

from chain import ChainClient, ChainError
from executor import ConfigError as ExecutorConfigError
from warden.app.daemon import Daemon, Plan
from warden.app.logs import setup_logging
from warden.app.settings import ConfigError, WardenConfig, load_config
from warden.devnet import Anvil, Deployment, DevnetError, deploy_stack
from warden.devnet.activity import Activity

log = logging.getLogger("warden.run")

EXIT_CONFIG = 2
EXIT_RUNTIME = 1
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
    try:
        cfg = load_config(args.config, os.environ)
    except ConfigError as exc:
        print(f"warden run: {args.config} has problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except OSError as exc:
        print(f"warden run: cannot read the config {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.devnet:
        cfg.chain.rpc = []
    secrets = [s.get_secret_value() for s in (cfg.executor.raw_key, cfg.api.token) if s]
    setup_logging(cfg.logging.level, json=cfg.logging.json_lines, secrets=secrets)
    try:
        return uvloop.run(_run(cfg))
    except (ConfigError, ExecutorConfigError) as exc:
        log.error("configuration: %s", exc)
        return EXIT_CONFIG
    except (DevnetError, ChainError, OSError) as exc:
        log.error("cannot run: %s", exc)
        return EXIT_RUNTIME


async def _run(cfg: WardenConfig) -> int:
    if not cfg.is_devnet:
        assert cfg.chain.factory is not None and cfg.chain.chain_id is not None
        plan = make_plan(cfg, cfg.chain.rpc, cfg.chain.factory, cfg.chain.chain_id)
        return await Daemon(plan).run()
    with _devnet(cfg) as (anvil, deployment):
        plan = make_plan(cfg, [anvil.url], deployment.factory, deployment.chain_id, deployment)
        activity = None
        if cfg.devnet.activity:
            client = ChainClient([anvil.url], chain_id=deployment.chain_id)
            owners = list(Web3(Web3.HTTPProvider(anvil.url)).eth.accounts)[3:9]
            activity = _ClosingActivity(
                client,
                Activity(
                    client, deployment, deployment.operator, owners, random.Random(),
                    logging.getLogger("warden.devnet.activity"), decimals=cfg.rules.decimals or 18,
                ),
            )  # fmt: skip
        return await Daemon(plan, activity=activity).run()


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
    if cfg.devnet.state_cache is not None:
        raise ConfigError(
            ["devnet.state_cache: not supported yet; remove it (each devnet run starts fresh)"]
        )
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


def make_plan(
    cfg: WardenConfig,
    rpc: list[str],
    factory: str,
    chain_id: int,
    deployment: Deployment | None = None,
) -> Plan:
    signer = cfg.load_signer(os.environ, chain_id=chain_id)
    relayer = cfg.executor.relayer or (deployment.operator if deployment else None)
    if signer is not None:
        log.info("relayer %s (%s)", signer.address, cfg.relayer_source())
    elif relayer is None:
        raise ConfigError(
            ["executor.relayer: dry-run without a key needs the relayer address to preflight "
             "as; set executor.relayer or configure a keystore"]
        )  # fmt: skip
    start_block = cfg.chain.start_block
    if deployment is not None:
        start_block = max(start_block, deployment.block)
    indexer = cfg.indexer_config(factory)
    if indexer.start_block != start_block:
        indexer = replace(indexer, start_block=start_block)
    return Plan(
        rpc=rpc,
        chain_id=chain_id,
        factory=factory,
        database=cfg.database,
        rules=list(cfg.rules.files),
        indexer=indexer,
        executor=cfg.executor_config(factory, chain_id),
        signer=signer,
        relayer=relayer,
        retry=cfg.retry_policy(),
        poll_interval=cfg.chain.poll_interval,
        decimals=cfg.rules.decimals,
        api_host=cfg.api.host,
        api_port=cfg.api.port,
        api_enabled=cfg.api.enabled,
        api_token=cfg.api.token.get_secret_value() if cfg.api.token else None,
        rpc_timeout=cfg.chain.timeout,
    )
