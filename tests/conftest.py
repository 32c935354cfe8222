"""Shared fixtures: one real anvil per test session, the deployed contracts, and a
snapshot around every test that changes the chain. Tests that need anvil are marked
`chain` here, so `pytest -m "not chain"` runs the rest fast without one. One real
PostgreSQL server per test session (`postgres`, tests/_postgres.py), an empty database of
its own for each test that asks (`pg_dsn`); those tests are marked `postgres`."""

from __future__ import annotations

import inspect
import os
import types
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_typing import ChecksumAddress
from web3.contract import Contract

from tests._chain import Chain, selector
from tests._postgres import ExternalPostgres, Postgres, PostgresServer, unique_database_name
from warden.devnet import Anvil, deploy_stack

TOKEN = 10**18
FEE_BPS = 100
ROOT = Path(__file__).resolve().parent.parent
CHAOS_TIMEOUT = 3_600  # s: `make chaos` runs for minutes each; the default is 600 s


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `chain` every test that needs anvil: through a fixture (the session `anvil`,
    or one of its dependants, or a fixture that starts its own), by starting one in its
    body or in a helper it calls (`Anvil(...)`, the chaos `world()`, the seeded chains'
    `seeded_anvil`), or by starting the daemon as a process (`Popen` of `warden run`,
    which needs a node, its own devnet or the test's): found by following, from the
    test and its fixtures, the names their code uses into this repository's functions
    and classes. The run with `WARDEN_ANVIL` pointing at a failing stub shows what this
    misses: `pytest -m "not chain"` must then pass."""
    seen: dict[object, bool] = {}
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        fixtures = item._fixtureinfo.name2fixturedefs
        needs = "anvil" in item.fixturenames or _reaches_anvil(item.obj, seen)
        needs = needs or any(
            _reaches_anvil(d.func, seen) for defs in fixtures.values() for d in defs
        )
        if needs:
            item.add_marker(pytest.mark.chain)
        if "postgres" in item.fixturenames:  # pg_dsn included: it depends on postgres
            item.add_marker(pytest.mark.postgres)
        if item.get_closest_marker("chaos") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(CHAOS_TIMEOUT))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say so when the browser tests (the console in headless Chromium) did not run: a
    machine without chromium skips them rather than failing."""
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if "browser" in r.keywords]
    if skipped:
        terminalreporter.write_line(
            f"{len(skipped)} browser test(s) skipped: chromium is not installed; "
            "`apt-get install chromium` enables them",
            yellow=True,
            bold=True,
        )


def _reaches_anvil(obj: object, seen: dict[object, bool]) -> bool:
    """Whether calling `obj` may start anvil. In the tests and scripts, conservatively,
    any name containing "anvil" counts (a helper `seeded_anvil`, an attribute
    `world.anvil`); in the production code only a path to the `Anvil` class does."""
    obj = getattr(getattr(obj, "hypothesis", None), "inner_test", obj)
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return False
    obj = inspect.unwrap(obj)
    if obj in seen:
        return seen[obj]
    seen[obj] = False  # recursion guard; the answer is written below
    where = _where(obj)
    if obj is Anvil:
        found = True
    elif where is None:
        found = False
    elif inspect.isclass(obj):
        found = any(_reaches_anvil(v, seen) for v in vars(obj).values())
    elif not isinstance(obj, types.FunctionType):
        found = False
    else:
        names = set(_code_names(obj.__code__))
        found = (where == "tests" and _starts_anvil(obj.__code__, names)) or any(
            _reaches_anvil(obj.__globals__[n], seen) for n in names if n in obj.__globals__
        )
    seen[obj] = found
    return found


def _where(obj: object) -> str | None:
    """`"tests"` for the tests' and scripts' code, `"production"` for the rest of this
    repository's, None for a library's."""
    try:
        path = Path(inspect.getfile(obj)).resolve()  # type: ignore[arg-type]
    except (TypeError, OSError):
        return None
    if not path.is_relative_to(ROOT) or {".venv", "node_modules"} & set(path.parts):
        return None
    return "tests" if path.relative_to(ROOT).parts[0] in ("tests", "scripts") else "production"


def _starts_anvil(code: types.CodeType, names: set[str]) -> bool:
    if any("anvil" in n.lower() for n in names):
        return True
    spawns = bool({"Popen", "create_subprocess_exec"} & names)
    return spawns and "run" in _code_consts(code)


def _code_names(code: types.CodeType) -> Iterable[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _code_consts(code: types.CodeType) -> Iterable[object]:
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_consts(const)
        else:
            yield const


@dataclass(frozen=True)
class Roles:
    deployer: ChecksumAddress  # factory owner
    owner: ChecksumAddress  # session owner
    operator: ChecksumAddress  # the relayer
    stranger: ChecksumAddress
    treasury: ChecksumAddress
    owner2: ChecksumAddress  # a second user, e.g. a front-runner


@dataclass(frozen=True)
class Stack:
    token: Contract
    factory: Contract
    game: Contract
    reentrant: Contract
    overpull: Contract
    lookalike: Contract
    untrusted_game: Contract  # a real game the registry does not trust

    @property
    def targets(self) -> list[str]:
        return [self.game.address, self.reentrant.address, self.overpull.address]


@dataclass(frozen=True)
class Session:
    wallet: Contract
    params: dict[str, Any]
    receipt: Any


@pytest.fixture(scope="session")
def anvil() -> Iterator[Anvil]:
    log_path = os.environ.get("WARDEN_ANVIL_LOG")
    log = open(log_path, "ab") if log_path else None  # noqa: SIM115 - closed below
    try:
        with Anvil(log=log) as node:
            yield node
    finally:
        if log:
            log.close()


@pytest.fixture(scope="session")
def postgres() -> Iterator[Postgres]:
    """The session's PostgreSQL: the server `WARDEN_TEST_POSTGRES` names, or else a
    throwaway one started here from the pinned binaries and removed afterwards (also when
    tests fail or the run is interrupted: this finalizer, then an atexit hook)."""
    url = os.environ.get("WARDEN_TEST_POSTGRES")
    server: Postgres = ExternalPostgres(url) if url else PostgresServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One store test, both stores: what `database:` would hold for this backend, a
    SQLite file in the test's directory or a fresh database on the suite's PostgreSQL."""
    if request.param == "sqlite":
        return str(tmp_path / "w.sqlite")
    return str(request.getfixturevalue("pg_dsn"))


@pytest.fixture
def pg_dsn(postgres: Postgres) -> Iterator[str]:
    """The DSN of an empty database of this test's own, dropped after it."""
    name = unique_database_name()
    dsn = postgres.create_database(name)
    try:
        yield dsn
    finally:
        postgres.drop_database(name)


@pytest.fixture(scope="session")
def chain(anvil: Anvil) -> Chain:
    return Chain(anvil)


def make_roles(chain: Chain) -> Roles:
    a = chain.accounts
    return Roles(
        deployer=a[0], owner=a[1], operator=a[2], stranger=a[3], treasury=a[4], owner2=a[5]
    )


@pytest.fixture(scope="session")
def roles(chain: Chain) -> Roles:
    return make_roles(chain)


def build_stack(chain: Chain, roles: Roles) -> Stack:
    """The contracts deployed and funded: what every chain test starts from."""
    dep = deploy_stack(
        chain.w3,
        deployer=roles.deployer,
        operator=roles.operator,
        treasury=roles.treasury,
        fee_bps=FEE_BPS,
    )
    token = chain.at("MockToken", dep.token)
    factory = chain.at("SessionWalletFactory", dep.factory)
    reentrant = chain.deploy("ReentrantTarget")
    overpull = chain.deploy("OverPullTarget", token.address)
    for target, signatures in (
        (reentrant.address, ["attack(uint8)"]),
        (overpull.address, [f"pull{k}(uint256)" for k in ("Extra", "Twice", "Part")]
         + ["pullNothing()"]),
    ):  # fmt: skip
        for signature in signatures:
            trust = factory.functions.setTrustedCall(target, selector(signature), True)
            chain.send(trust, roles.deployer)
    for who in (roles.owner, roles.owner2):
        chain.send(token.functions.mint(who, 10**9 * TOKEN), roles.deployer)
    game = chain.at("TestGame", dep.game)
    chain.send(token.functions.mint(game.address, 10**9 * TOKEN), roles.deployer)
    return Stack(
        token=token,
        factory=factory,
        game=game,
        reentrant=reentrant,
        overpull=overpull,
        lookalike=chain.deploy("LookAlikeWallet"),
        untrusted_game=chain.deploy("TestGame", token.address),
    )


@pytest.fixture(scope="session")
def stack(chain: Chain, roles: Roles) -> Stack:
    return build_stack(chain, roles)


@pytest.fixture
def fresh_chain(chain: Chain, stack: Stack) -> Iterator[Chain]:
    """The deployed stack, with every change this test makes undone afterwards."""
    snap = chain.snapshot()
    try:
        yield chain
    finally:
        chain.revert_to(snap)


def ceil_fee(amount: int, bps: int = FEE_BPS) -> int:
    """The contracts' fee on `amount`: rounded up, so the treasury never loses a remainder."""
    return -(-amount * bps // 10_000)


def session_params(chain: Chain, stack: Stack, roles: Roles, **overrides: Any) -> dict[str, Any]:
    params: dict[str, Any] = {
        "operator": roles.operator,
        "token": stack.token.address,
        "deposit": 1_000 * TOKEN,
        "expiry": chain.now() + 86_400,
        "budget": 500 * TOKEN,
        "stopLoss": 200 * TOKEN,
        "takeProfit": 3_000 * TOKEN,
        "policy": "berzerker",
        "targets": stack.targets,
        "maxFeeBps": FEE_BPS,
    }
    params.update(overrides)
    return params


def as_tuple(params: dict[str, Any]) -> tuple[Any, ...]:
    keys = ("operator", "token", "deposit", "expiry", "budget", "stopLoss", "takeProfit",
            "policy", "targets", "maxFeeBps")  # fmt: skip
    return tuple(params[k] for k in keys)


def create_session(
    chain: Chain, stack: Stack, owner: str, params: dict[str, Any], salt: bytes
) -> Session:
    fee = stack.factory.functions.feeFor(params["deposit"]).call()
    token = stack.token
    if params["token"] != token.address:  # another registry token, e.g. a HostileToken
        token = chain.at("MockToken", params["token"])
    chain.send(token.functions.approve(stack.factory.address, params["deposit"] + fee), owner)
    receipt = chain.send(stack.factory.functions.createSession(as_tuple(params), salt), owner)
    (created,) = chain.events(receipt, stack.factory)
    wallet = chain.at("SessionWallet", created["args"]["wallet"])
    return Session(wallet=wallet, params=params, receipt=receipt)


def top_up(chain: Chain, stack: Stack, wallet: Contract, amount: int, owner: str) -> Any:
    """The owner's top-up: approve the wallet for the amount and its fee, then deposit
    with the current fee as the most accepted. The receipt."""
    fee = stack.factory.functions.feeFor(amount).call()
    chain.send(stack.token.functions.approve(wallet.address, amount + fee), owner)
    return chain.send(wallet.functions.deposit(amount, FEE_BPS), owner)


@pytest.fixture
def make_session(fresh_chain: Chain, stack: Stack, roles: Roles) -> Callable[..., Session]:
    counter = iter(range(1, 1_000_000))

    def make(owner: str | None = None, **overrides: Any) -> Session:
        params = session_params(fresh_chain, stack, roles, **overrides)
        salt = next(counter).to_bytes(32, "big")
        return create_session(fresh_chain, stack, owner or roles.owner, params, salt)

    return make


@pytest.fixture
def hostile_token(fresh_chain: Chain, stack: Stack, roles: Roles) -> Contract:
    """A HostileToken the registry trusts, honest until a test flips its switch; the
    owners hold 10**9 of it. Deployed per test: the snapshot of `fresh_chain` undoes it."""
    token = fresh_chain.deploy("HostileToken", "Hostile", "HST")
    fresh_chain.send(stack.factory.functions.setTrustedToken(token.address, True), roles.deployer)
    for who in (roles.owner, roles.owner2):
        fresh_chain.send(token.functions.mint(who, 10**9 * TOKEN), roles.deployer)
    return token
