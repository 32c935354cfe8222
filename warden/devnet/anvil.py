"""A local anvil devnet: find the repository's pinned binary, start it on a free loopback
port, wait until it answers, stop it; and deploy the contracts onto it.

Used by tests (a session fixture) and by devnet mode. anvil comes from the npm package
`@foundry-rs/anvil-linux-amd64` that scripts/bootstrap.sh installs into node_modules/.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Self

from web3 import Web3

from contracts import load_artifact

# anvil's default mnemonic ("test test ... junk"): well-known, devnet only.
DEVNET_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
)


class DevnetError(RuntimeError):
    """The devnet could not be started or used; the message says how to fix it."""


GAME_PLAY = bytes(Web3.keccak(text="play(uint256)")[:4])  # the one call the devnet trusts


def find_anvil(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Locate anvil: an explicit path, $WARDEN_ANVIL, the repository's node_modules, PATH."""
    candidates: list[Path] = []
    if explicit:
        candidates.append(Path(explicit))
    if env := os.environ.get("WARDEN_ANVIL"):
        candidates.append(Path(env))
    repo = Path(__file__).resolve().parents[2]
    for base in (Path.cwd(), repo):
        candidates.append(base / "node_modules" / ".bin" / "anvil")
    if found := shutil.which("anvil"):
        candidates.append(Path(found))
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return c
    raise DevnetError(
        "anvil not found (looked in $WARDEN_ANVIL, ./node_modules/.bin, PATH); "
        "run scripts/bootstrap.sh to install the pinned devnet toolchain"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Anvil:
    """One anvil process on 127.0.0.1. Use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        binary: str | os.PathLike[str] | None = None,
        chain_id: int = 31337,
        block_time: float | None = None,
        extra_args: Sequence[str] = (),
        log: IO[bytes] | None = None,
        start_timeout: float = 20.0,
        stop_timeout: float = 5.0,
    ) -> None:
        """`start_timeout` must cover loading a large `--load-state`; `stop_timeout` writing
        a large `--dump-state` (anvil writes it on SIGTERM, before it exits)."""
        self.binary = find_anvil(binary)
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.chain_id = chain_id
        self.block_time = block_time
        self.extra_args = list(extra_args)
        self.port: int | None = None
        self._log = log
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise DevnetError("anvil is not running")
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float | None = None) -> Self:
        timeout = self.start_timeout if timeout is None else timeout
        last_error = ""
        for _ in range(3):  # a free port can be taken between probe and bind
            self.port = free_port()
            args = [
                str(self.binary),
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--chain-id", str(self.chain_id),
                *(["--block-time", str(self.block_time)] if self.block_time else []),
                *self.extra_args,
            ]  # fmt: skip
            # a file, not a pipe: a long-lived anvil must never block on a full stderr pipe
            self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
            self._proc = subprocess.Popen(
                args,
                stdout=self._log or subprocess.DEVNULL,
                stderr=self._stderr,
                stdin=subprocess.DEVNULL,
            )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self._proc.poll() is not None:
                    self._stderr.seek(0)
                    last_error = self._stderr.read().decode(errors="replace")
                    self._stderr.close()
                    break
                if self._answers():
                    return self
                time.sleep(0.05)
            else:
                self.stop()
                raise DevnetError(f"anvil did not answer on {self.url} within {timeout:.0f} s")
            if "in use" not in last_error:
                break
        self._proc = None
        raise DevnetError(f"anvil exited at start: {last_error.strip()[-500:]}")

    def _answers(self) -> bool:
        try:
            self.rpc("eth_chainId")
        except (OSError, urllib.error.URLError, DevnetError):
            return False
        return True

    def rpc(self, method: str, *params: Any) -> Any:
        """One raw JSON-RPC call (for anvil_* and evm_* methods)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        req = urllib.request.Request(
            self.url, data=body.encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            answer = json.loads(resp.read())
        if "error" in answer:
            raise DevnetError(f"{method}: {answer['error']}")
        return answer["result"]

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        cut_short = False
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
                cut_short = True
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None
        if cut_short and "--dump-state" in self.extra_args:
            raise DevnetError(
                f"anvil took over {self.stop_timeout:.0f} s to write its --dump-state and was "
                "killed: the dump is incomplete; raise stop_timeout"
            )

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


@dataclass(frozen=True)
class Deployment:
    """Addresses of one deployed stack (all checksummed)."""

    chain_id: int
    deployer: str
    operator: str
    treasury: str
    token: str
    factory: str
    game: str
    block: int


def deploy_contract(w3: Web3, name: str, sender: str, *args: Any) -> str:
    art = load_artifact(name)
    tx = (
        w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
        .constructor(*args)
        .transact({"from": sender})
    )
    receipt = w3.eth.wait_for_transaction_receipt(tx)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise DevnetError(f"deploying {name} failed (tx {tx.hex()})")
    return str(receipt["contractAddress"])


def deploy_stack(
    w3: Web3, *, deployer: str, operator: str, treasury: str, fee_bps: int = 100
) -> Deployment:
    """Deploy a mintable token, the factory and the test game; trust the operator, the
    token and the game's `play(uint256)` (the registry trusts calls, not whole targets).

    Uses unlocked node accounts (anvil), so it is meant for devnets only.
    """
    token = deploy_contract(w3, "MockToken", deployer, "Warden Test Token", "WTT")
    factory = deploy_contract(w3, "SessionWalletFactory", deployer, deployer, treasury, fee_bps)
    game = deploy_contract(w3, "TestGame", deployer, token)
    f = w3.eth.contract(
        address=Web3.to_checksum_address(factory), abi=load_artifact("SessionWalletFactory").abi
    )
    for tx in (
        f.functions.setTrustedOperator(operator, True).transact({"from": deployer}),
        f.functions.setTrustedToken(token, True).transact({"from": deployer}),
        f.functions.setTrustedCall(game, GAME_PLAY, True).transact({"from": deployer}),
    ):
        if w3.eth.wait_for_transaction_receipt(tx)["status"] != 1:
            raise DevnetError("configuring the factory failed")
    return Deployment(
        chain_id=w3.eth.chain_id,
        deployer=deployer,
        operator=operator,
        treasury=treasury,
        token=token,
        factory=factory,
        game=game,
        block=w3.eth.block_number,
    )
