"""`warden config check FILE`: validate a daemon config, print it resolved (secrets
masked), the mode, how the relayer signs, and warnings. Exit 0 when valid, 2 when not
(configuration errors are exit 2 across this CLI; runtime failures are 1)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from rules import check_files
from warden.app.settings import ConfigError, WardenConfig, load_config
from warden.cli.exit_codes import ExitCode


def add_config_parser(subparsers: Any) -> None:
    config = subparsers.add_parser("config", help="work with the daemon config file")
    sub = config.add_subparsers(dest="config_command", metavar="SUBCOMMAND", required=True)
    check = sub.add_parser(
        "check",
        help="validate a daemon config (YAML): every problem with file:line and the fix; "
        "print the resolved config with secrets masked",
    )
    check.add_argument("file", metavar="FILE", help="daemon config file (YAML)")
    check.add_argument(
        "--unlock",
        action="store_true",
        help="also load the relayer key (decrypts the keystore) and print its address",
    )


def run_config_command(args: argparse.Namespace) -> int:
    if args.config_command != "check":  # argparse enforces the choice; keep mypy honest
        return ExitCode.CONFIG
    return check(args.file, os.environ, unlock=args.unlock)


def check(path: str, environ: Any, *, unlock: bool = False) -> int:
    try:
        cfg = load_config(path, environ)
        # Unlocked before anything is printed: a wrong password is a problem of the
        # file, at executor.keystore's line, exactly as `warden run` reports it.
        signer = cfg.unlock(environ) if unlock else None
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''} found", file=sys.stderr)
        return ExitCode.CONFIG
    problems, _ = check_files(cfg.rules.files)
    for line in cfg.describe():
        print(f"  {line}")
    print(f"mode: {_mode(cfg)}")
    print(f"confirmations: {cfg.confirmations}")
    print(f"relayer: {cfg.relayer_source()}")
    if unlock and not cfg.dry_run:
        print(f"relayer address: {signer.address if signer else '-'}")
    for warning in cfg.warnings():
        print(f"warning: {warning}")
    if problems:
        for rule_problem in problems:
            print(f"rules: {rule_problem}", file=sys.stderr)
        print(f"{len(problems)} problem(s) in the rule files", file=sys.stderr)
        return ExitCode.CONFIG
    print(f"ok: {path} is valid")
    return ExitCode.OK


def _mode(cfg: WardenConfig) -> str:
    if cfg.is_devnet:
        return "devnet (Warden starts anvil and deploys its own contracts)"
    endpoints = len(cfg.chain.rpc)
    return (
        f"chain id {cfg.chain.chain_id}, factory {cfg.chain.factory}, "
        f"{endpoints} RPC endpoint{'s' if endpoints != 1 else ''}"
    )
