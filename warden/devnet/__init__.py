"""A local devnet for `make run`, `warden devnet` and the tests: the repository's pinned
anvil on a free loopback port with the contracts deployed (`warden.devnet.anvil`), and
an activity generator that opens and moves demo sessions so every rule fires
(`warden.devnet.activity`). Nothing here runs against a real network."""

from warden.devnet.anvil import (
    DEVNET_KEYS,
    Anvil,
    Deployment,
    DevnetError,
    deploy_contract,
    deploy_stack,
    find_anvil,
    free_port,
)

__all__ = [
    "DEVNET_KEYS",
    "Anvil",
    "Deployment",
    "DevnetError",
    "deploy_contract",
    "deploy_stack",
    "find_anvil",
    "free_port",
]
