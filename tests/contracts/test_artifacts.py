"""The committed artifacts are exactly what the pinned compiler builds from the sources,
and an ordinary (non-editable) install of the package ships and loads them."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from contracts import artifact_names, load_artifact, solc_version

ROOT = Path(__file__).resolve().parents[2]


def test_committed_artifacts_equal_a_fresh_build(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "build_contracts.py"), "--out", str(tmp_path)],
        capture_output=True, text=True, check=False, timeout=300,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    fresh = sorted(p.name for p in tmp_path.glob("*.json"))
    committed = sorted(p.name for p in (ROOT / "contracts" / "artifacts").glob("*.json"))
    assert fresh == committed
    for name in fresh:
        assert (tmp_path / name).read_bytes() == (
            ROOT / "contracts" / "artifacts" / name
        ).read_bytes(), f"{name} differs from a fresh build: run `make contracts`"


def test_artifacts_name_the_pinned_compiler() -> None:
    names = artifact_names()
    assert {"SessionWallet", "SessionWalletFactory", "MockToken", "TestGame"} <= set(names)
    for name in names:
        art = load_artifact(name)
        assert art.compiler.startswith(solc_version() + "+"), name
        assert art.bytecode.startswith("0x") and len(art.bytecode) > 2


def _pip(*args: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--quiet"],
        capture_output=True, text=True, check=False, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, f"pip {args[0]} failed: {out.stderr}"


def test_a_non_editable_install_finds_the_artifacts(tmp_path: Path) -> None:
    wheels = tmp_path / "wheels"
    _pip("wheel", "-w", str(wheels), str(ROOT))
    (wheel,) = wheels.glob("session_warden-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        shipped = {n for n in zf.namelist() if n.startswith("contracts/artifacts/")}
    assert {f"contracts/artifacts/{n}.json" for n in artifact_names()} == shipped

    site = tmp_path / "site"
    _pip("install", "--target", str(site), str(wheel))
    # -S: no site-packages, so neither the editable install nor the work tree can answer
    probe = subprocess.run(
        [sys.executable, "-S", "-c",
         "import contracts; a = contracts.load_artifact('SessionWalletFactory'); "
         "print(contracts.__file__); print(len(a.abi), contracts.solc_version())"],
        capture_output=True, text=True, check=False, cwd=tmp_path, env={"PYTHONPATH": str(site)},
    )  # fmt: skip
    assert probe.returncode == 0, probe.stderr
    location, summary = probe.stdout.splitlines()
    assert Path(location).is_relative_to(site)
    assert int(summary.split()[0]) > 10 and summary.split()[1] == solc_version()
