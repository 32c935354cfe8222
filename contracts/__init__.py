"""Solidity sources, the pinned compiler version and the committed build artifacts.

Artifacts ship inside the installed package (a non-editable install finds them too):

    >>> from contracts import load_artifact
    >>> load_artifact("SessionWalletFactory").abi
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from contracts.vocabulary import (
    CLOSE_REASONS,
    MAX_BATCH,
    MAX_MEMBER_GAS,
    MIN_MEMBER_GAS,
    OPEN_STATUSES,
    POLICY_REASONS,
    SESSION_STATUSES,
    SWEEP_REASON,
    UINT256_MAX,
)

__all__ = [
    "CLOSE_REASONS",
    "MAX_BATCH",
    "MAX_MEMBER_GAS",
    "MIN_MEMBER_GAS",
    "OPEN_STATUSES",
    "POLICY_REASONS",
    "SESSION_STATUSES",
    "SWEEP_REASON",
    "UINT256_MAX",
    "Artifact",
    "ArtifactNotFound",
    "artifact_names",
    "load_artifact",
    "solc_version",
]


class ArtifactNotFound(LookupError):
    """No artifact of that name ships with this installation."""


@dataclass(frozen=True)
class Artifact:
    name: str
    source: str
    compiler: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


def _artifact_dir() -> resources.abc.Traversable:
    return resources.files(__name__) / "artifacts"


def artifact_names() -> list[str]:
    return sorted(
        p.name.removesuffix(".json") for p in _artifact_dir().iterdir() if p.name.endswith(".json")
    )


@cache
def load_artifact(name: str) -> Artifact:
    path = _artifact_dir() / f"{name}.json"
    if not path.is_file():
        raise ArtifactNotFound(
            f"no contract artifact {name!r}; known: {', '.join(artifact_names())} "
            "(rebuild with `make contracts`)"
        )
    raw = json.loads(path.read_text())
    return Artifact(
        name=raw["contractName"],
        source=raw["sourceName"],
        compiler=raw["compiler"],
        abi=raw["abi"],
        bytecode=raw["bytecode"],
        deployed_bytecode=raw["deployedBytecode"],
    )


def solc_version() -> str:
    """The compiler version the artifacts must be built with (contracts/SOLC_VERSION)."""
    return (resources.files(__name__) / "SOLC_VERSION").read_text().strip()
