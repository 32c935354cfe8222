"""Compile contracts/ with the pinned solc and write artifacts the Python package loads.

    python scripts/build_contracts.py            # write contracts/artifacts/*.json
    python scripts/build_contracts.py --out DIR  # write elsewhere (used to prove the
                                                 # committed artifacts equal a fresh build)
    python scripts/build_contracts.py --check    # exit 1 if committed artifacts are stale

The compiler is the `solc` npm package installed by scripts/bootstrap.sh; its version must
equal contracts/SOLC_VERSION. Output is deterministic: same sources, same bytes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
SOURCE_DIRS = ("src", "test")
SETTINGS = {
    "optimizer": {"enabled": True, "runs": 200},
    "viaIR": True,
    "evmVersion": "cancun",
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


class BuildError(Exception):
    pass


def pinned_version() -> str:
    return (CONTRACTS / "SOLC_VERSION").read_text().strip()


def compiler_version() -> str:
    node = _node()
    out = subprocess.run(
        [node, str(ROOT / "scripts" / "solc_compile.cjs"), "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise BuildError(
            f"cannot run solc from node_modules ({out.stderr.strip()}); run scripts/bootstrap.sh"
        )
    return out.stdout.strip()


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        raise BuildError("node is not on PATH; install Node.js >= 20 and run scripts/bootstrap.sh")
    return node


def collect_sources() -> dict[str, dict[str, str]]:
    sources: dict[str, dict[str, str]] = {}
    for sub in SOURCE_DIRS:
        for path in sorted((CONTRACTS / sub).glob("*.sol")):
            unit = path.relative_to(ROOT).as_posix()
            sources[unit] = {"content": path.read_text()}
    if not sources:
        raise BuildError(f"no Solidity sources under {CONTRACTS}")
    return sources


def compile_all() -> dict[str, dict[str, object]]:
    version = compiler_version()
    want = pinned_version()
    if not version.startswith(want + "+"):
        raise BuildError(
            f"solc {version} in node_modules, but contracts/SOLC_VERSION pins {want}; "
            "run scripts/bootstrap.sh (npm ci) or update the pin"
        )
    sources = collect_sources()
    standard_input = {"language": "Solidity", "sources": sources, "settings": SETTINGS}
    out = subprocess.run(
        [_node(), str(ROOT / "scripts" / "solc_compile.cjs")],
        input=json.dumps(standard_input),
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise BuildError(f"solc failed to run: {out.stderr.strip()}")
    result = json.loads(out.stdout)
    errors = [e for e in result.get("errors", []) if e.get("severity") == "error"]
    for e in result.get("errors", []):
        # Warnings inside OpenZeppelin are theirs to fix; ours and all errors are shown.
        origin = e.get("sourceLocation", {}).get("file", "")
        if e.get("severity") == "error" or not origin.startswith("@openzeppelin/"):
            print(e.get("formattedMessage", e.get("message")), file=sys.stderr)
    if errors:
        raise BuildError(f"{len(errors)} compilation error(s), see above")

    artifacts: dict[str, dict[str, object]] = {}
    for unit in sources:
        for name, c in result["contracts"].get(unit, {}).items():
            bytecode = c["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # interfaces and abstract contracts
            if name in artifacts:
                raise BuildError(f"contract name {name} defined twice ({unit})")
            artifacts[name] = {
                "contractName": name,
                "sourceName": unit,
                "compiler": version,
                "settings": {k: v for k, v in SETTINGS.items() if k != "outputSelection"},
                "abi": c["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + c["evm"]["deployedBytecode"]["object"],
            }
    return artifacts


def write_artifacts(artifacts: dict[str, dict[str, object]], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.json"):
        if stale.stem not in artifacts:
            stale.unlink()
    for name, art in sorted(artifacts.items()):
        (out_dir / f"{name}.json").write_text(json.dumps(art, indent=2, sort_keys=True) + "\n")


def diff_dirs(a: Path, b: Path) -> list[str]:
    names = {p.name for p in a.glob("*.json")} | {p.name for p in b.glob("*.json")}
    return sorted(
        n
        for n in names
        if not (a / n).exists()
        or not (b / n).exists()
        or (a / n).read_bytes() != (b / n).read_bytes()
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out",
        type=Path,
        default=CONTRACTS / "artifacts",
        help="directory for <Contract>.json artifacts (default: %(default)s)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="compile into a temporary directory and compare with --out",
    )
    args = parser.parse_args(argv)
    try:
        artifacts = compile_all()
    except BuildError as exc:
        print(f"build_contracts: error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            write_artifacts(artifacts, Path(tmp))
            stale = diff_dirs(Path(tmp), args.out)
        if stale:
            print(
                "build_contracts: stale artifacts (run `make contracts`): " + ", ".join(stale),
                file=sys.stderr,
            )
            return 1
        print(f"build_contracts: {len(artifacts)} artifacts match a fresh build")
        return 0
    write_artifacts(artifacts, args.out)
    print(f"build_contracts: wrote {len(artifacts)} artifacts to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
