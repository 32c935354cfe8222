"""Which sessions share a `closeBatch`, how a batch is proven before it is sent, and what
its receipt says of each member.

Inside `closeBatch` each member runs with a gas stipend (`batch_member_gas`); one that
reverts or runs out of it is reported (`BatchCloseFailed`) and skipped, and the batch
stops, reporting the rest (`BatchIncomplete`), before its gas could fall short of the
next member's stipend. So a hostile token costs a batch at most its stipend, never the
others' closes. Still, only what there is reason to trust is batched:

- the session's token is listed by the factory's registry *now* (`isTrustedToken`: a
  token can be de-listed after sessions were opened with it). The step's tokens are asked
  in one JSON-RPC batch and the answers kept `REGISTRY_TTL_MS`; a question the node
  refuses, or a malformed answer, counts as "not listed": the session is closed alone,
  which is always safe, and it is asked again next step;
- `batch_tokens` lists it, when set;
- the session was never taken out of batching (`isolated_wallets`): its close failed in
  a batch, or in a batch's simulation, for a reason that does not make it obsolete (its
  token reverted, burnt its stipend, re-entered). Such a session is closed alone from then
  on, under `single_close_gas_cap`, and an `isolated` alert says why.

A batch's gas limit is computed (`calls.batch_gas`), never estimated: `closeBatch` succeeds
whatever its members do, so `eth_estimateGas` finds the gas of a batch that stops at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from eth_utils.crypto import keccak

from chain import BadResponse, ChainClient, calls
from chain.calls import Call
from chain.reverts import EMPTY, Revert, batch_failures, batch_unreached
from executor.alerts import ISOLATED, Alerts
from executor.guards import batch_tokens
from executor.intents import IntentRow
from executor.outbox import Outbox
from executor.settings import ExecutorSettings
from indexer import Session

log = logging.getLogger("warden.executor")

# A batch's gas limit: intrinsic gas, this much per member, and one whole stipend and the
# contract's reserve on top (`calls.batch_gas`): every honest member is reached even when
# one burns its stipend. An honest close of a registry token takes about 30,000.
BATCH_MEMBER_GAS = 60_000

IS_TRUSTED_TOKEN = "0x" + keccak(text="isTrustedToken(address)")[:4].hex()
# A de-listing takes effect for new batches within this long (wall clock); a batch sent
# just before is still bounded by its stipends.
REGISTRY_TTL_MS = 10_000


@dataclass(frozen=True, slots=True)
class Group:
    """One job to be: a batch with its computed gas limit, or a single close (gas None:
    estimated, under `single_close_gas_cap`)."""

    call: Call
    members: list[IntentRow]
    gas: int | None


class TokenRegistry:
    """The factory's `isTrustedToken`, asked in batches and kept for a short while."""

    def __init__(
        self,
        client: ChainClient,
        factory: str,
        clock_ms: Callable[[], int],
        ttl_ms: int = REGISTRY_TTL_MS,
    ) -> None:
        self.client = client
        self.factory = factory
        self.clock_ms = clock_ms
        self.ttl_ms = ttl_ms
        self._known: dict[str, tuple[bool, int]] = {}  # token -> (listed, asked at ms)
        self._refused: set[str] = set()  # tokens whose question the node refused (logged)

    async def listed(self, tokens: Iterable[str]) -> frozenset[str]:
        """The tokens among these the registry lists."""
        now = self.clock_ms()
        wanted = set(tokens)
        stale = sorted(
            t for t in wanted if t not in self._known or now - self._known[t][1] >= self.ttl_ms
        )
        if stale:
            answers = await self.client.batch_each(
                [("eth_call", [self._question(t), "latest"]) for t in stale]
            )
            for token, answer in zip(stale, answers, strict=True):
                self._learn(token, answer, now)
        return frozenset(t for t in wanted if self._known.get(t, (False, 0))[0])

    def _question(self, token: str) -> dict[str, str]:
        return {"to": self.factory, "data": IS_TRUSTED_TOKEN + token[2:].lower().rjust(64, "0")}

    def _learn(self, token: str, answer: Any, now: int) -> None:
        listed = _abi_bool(answer)
        if listed is None:
            self._known.pop(token, None)
            if token not in self._refused:
                self._refused.add(token)
                log.warning(
                    "isTrustedToken(%s) on the factory %s: %s; its sessions are closed alone "
                    "until the registry answers",
                    token, self.factory, answer if isinstance(answer, Exception) else
                    f"unexpected answer {str(answer)[:80]!r}",
                )  # fmt: skip
            return
        self._refused.discard(token)
        before = self._known.get(token)
        if before is not None and before[0] and not listed:
            log.warning("the registry no longer lists %s: its sessions are closed alone", token)
        self._known[token] = (listed, now)


def _abi_bool(answer: object) -> bool | None:
    if not isinstance(answer, str) or len(answer) != 66 or not answer.startswith("0x"):
        return None
    try:
        value = int(answer, 16)
    except ValueError:
        return None
    return {0: False, 1: True}.get(value)


@dataclass(frozen=True, slots=True)
class Batchable:
    """Whether a session may share a batch this step (see the module)."""

    listed: frozenset[str]
    narrowed: frozenset[str] | None  # `batch_tokens`
    isolated: dict[str, str] = field(default_factory=dict)  # wallet -> why

    def __call__(self, intent: IntentRow, session: Session) -> bool:
        return (
            intent.wallet not in self.isolated
            and session.token in self.listed
            and (self.narrowed is None or session.token in self.narrowed)
        )


def group(
    ready: Sequence[tuple[IntentRow, Session]],
    batchable: Callable[[IntentRow, Session], bool],
    *,
    factory: str,
    max_size: int,
    member_gas: int,
    allowance: int,
    block_gas_limit: int | None = None,
) -> list[Group]:
    """Batches of at most `max_size` of the batchable intents, then every other alone.
    With `block_gas_limit` (the node's), no batch's gas limit exceeds it: a transaction
    larger than a block is refused by the node, or never mined."""
    together = [i for i, s in ready if batchable(i, s)]
    alone = [i for i, s in ready if not batchable(i, s)]
    groups: list[Group] = []
    if block_gas_limit is not None:
        max_size = min(max_size, calls.max_batch_members(block_gas_limit, member_gas, allowance))
    if len(together) >= 2 and max_size > 1:
        for start in range(0, len(together), max_size):
            chunk = together[start : start + max_size]
            if len(chunk) == 1:
                alone.extend(chunk)
                continue
            members = [(i.wallet, i.action, i.reason) for i in chunk]
            call = calls.batch(factory, members, member_gas=member_gas)
            gas = calls.batch_gas(call, len(chunk), allowance)
            if block_gas_limit is not None and gas > block_gas_limit:  # pragma: no cover
                raise AssertionError(f"a batch of {len(chunk)} needs {gas} gas, above the block")
            groups.append(Group(call, chunk, gas))
    else:
        alone.extend(together)
    groups.extend(Group(calls.single(i.wallet, i.action, i.reason), [i], None) for i in alone)
    return groups


@dataclass(frozen=True, slots=True)
class BatchRun:
    """What one run of a `closeBatch` (a receipt's logs, or a simulation's) says."""

    failures: dict[str, Revert]  # checksummed wallet -> its revert (36 bytes at most)
    unreached: frozenset[str]  # checksummed: not tried, to be sent again

    @classmethod
    def of(cls, logs: Sequence[Any], factory: str) -> BatchRun:
        return cls(batch_failures(logs, factory), frozenset(batch_unreached(logs, factory)))

    @classmethod
    def none(cls) -> BatchRun:
        return cls({}, frozenset())


def simulated(answer: object, factory: str) -> tuple[int | None, BatchRun]:
    """closeBatch's count and its members' story from one `eth_simulateV1` answer; a
    count of None and an empty story when the answer says less (the call failed, or a
    node that returns no logs)."""
    count = calls.simulated_count(answer)
    try:
        logs = answer[0]["calls"][0]["logs"]  # type: ignore[index]
        return count, BatchRun.of(list(logs), factory)
    except (LookupError, TypeError, BadResponse):
        return count, BatchRun.none()


def misbehaved(revert: Revert, stipend: int) -> str | None:
    """Why a batch member's failure takes its session out of batching; None when it
    only makes the intent obsolete (the session is closed, revoked, not sweepable yet)."""
    if revert.obsolete:
        return None
    if revert.name == EMPTY:
        return f"ran out of its gas stipend ({stipend}) or reverted without data"
    return f"reverted with {revert}"


class Batcher:
    """A step's batching: what may share a batch, the batches, and their simulation."""

    def __init__(
        self,
        client: ChainClient,
        outbox: Outbox,
        settings: ExecutorSettings,
        *,
        factory: str,
        relayer: str,
        dry_run: bool,
        alerts: Alerts,
        clock_ms: Callable[[], int],
    ) -> None:
        self.client = client
        self.outbox = outbox
        self.settings = settings
        self.factory = factory
        self.relayer = relayer
        self.dry_run = dry_run
        self.alerts = alerts
        self.clock_ms = clock_ms
        self.registry = TokenRegistry(client, factory, clock_ms)
        self.member_allowance = BATCH_MEMBER_GAS
        self.batchable = Batchable(frozenset(), None)  # this step's (`prepare`)
        self.simulate = True  # until the node says it has no eth_simulateV1
        self.block_gas_limit: int | None = None  # the node's, read each step (`Submitter`)

    async def prepare(self, ready: Sequence[tuple[IntentRow, Session]]) -> None:
        """This step's rule of what may share a batch; the registry is asked only when a
        batch could form."""
        narrowed = batch_tokens(self.settings)
        isolated = await self.outbox.isolated({i.wallet for i, _ in ready})
        tokens = [
            s.token
            for i, s in ready
            if i.wallet not in isolated and (narrowed is None or s.token in narrowed)
        ]
        could = len(tokens) >= 2 and self.settings.max_batch_size > 1
        listed = await self.registry.listed(tokens) if could else frozenset()
        self.batchable = Batchable(listed, narrowed, isolated)

    def group(self, ready: Sequence[tuple[IntentRow, Session]]) -> list[Group]:
        return group(
            ready, self.batchable, factory=self.factory, max_size=self.settings.max_batch_size,
            member_gas=self.settings.batch_member_gas, allowance=self.member_allowance,
            block_gas_limit=self.block_gas_limit,
        )  # fmt: skip

    async def verify(
        self, ready: list[tuple[IntentRow, Session]]
    ) -> tuple[list[Group], list[tuple[IntentRow, Session]]]:
        """Batches proven whole by one simulation each; the intents left for the rest.

        The simulation (`eth_simulateV1`) runs the batch exactly as it would be sent, at
        its gas limit: `closeBatch` returns how many members it closed, so a count equal
        to the batch's size is every member's preflight and proves the gas limit, in one
        execution. A batch that falls short goes member by member through the preflight
        and is grouped again without the members whose simulated close misbehaved (taken
        out of batching for good: they are closed alone). A node without the method, or
        a simulation that says less, leaves it to the preflight; the receipt judges."""
        groups = [g for g in self.group(ready) if g.call.kind == "batch"]
        if not groups or not self.simulate:
            return [], ready
        answers = await self.client.batch_each(
            [
                ("eth_simulateV1", [calls.simulation(self.relayer, g.call, g.gas or 0), "latest"])
                for g in groups
            ]
        )
        verified: list[Group] = []
        done: set[str] = set()
        isolations: list[tuple[str, str, str]] = []
        stipend = self.settings.batch_member_gas
        for g, answer in zip(groups, answers, strict=True):
            if isinstance(answer, Exception):
                # Only a refusal comes back here (transport failures retry the batch):
                # a node without the method, or one that does not take these parameters.
                log.info("the node does not simulate (%s): batches are judged by receipt", answer)
                self.simulate = False
                continue
            count, run = simulated(answer, self.factory)
            if count == len(g.members):
                verified.append(g)
                done.update(m.key for m in g.members)
                continue
            for m in g.members:
                revert = run.failures.get(m.wallet)
                why = misbehaved(revert, stipend) if revert is not None else None
                if why is not None:
                    isolations.append(
                        (m.wallet, m.key, f"in a simulated closeBatch its close {why}")
                    )
        await self.isolate(isolations)
        return verified, [(i, s) for i, s in ready if i.key not in done]

    async def isolate(self, isolations: Sequence[tuple[str, str, str]]) -> None:
        """Take (wallet, key, why) out of batching, from this step on and for good (in
        dry-run for this process only: it writes nothing but its own records)."""
        fresh = [x for x in isolations if x[0] not in self.batchable.isolated]
        if not fresh:
            return
        if not self.dry_run:
            await self.outbox.isolate(fresh, self.clock_ms())
        for wallet, key, why in fresh:
            self.batchable.isolated[wallet] = why
            self.alerts.raise_(ISOLATED, isolated_message(wallet, key, why, self.settings))


def isolated_message(wallet: str, key: str, why: str, settings: ExecutorSettings) -> str:
    """The `isolated` alert's text."""
    return (
        f"session {wallet} taken out of batching (intent {key}): {why}; it is closed alone "
        f"from now on, under single_close_gas_cap {settings.single_close_gas_cap}"
    )
