"""The devnet launcher: starts the pinned anvil on loopback, stops it, and explains failures."""

from __future__ import annotations

import urllib.error

import pytest

from warden.devnet import Anvil, DevnetError


def test_starts_on_loopback_answers_and_stops() -> None:
    node = Anvil(chain_id=4242).start()
    try:
        assert node.url.startswith("http://127.0.0.1:")
        assert int(node.rpc("eth_chainId"), 16) == 4242
    finally:
        node.stop()
    with pytest.raises((OSError, urllib.error.URLError)):
        node.rpc("eth_chainId")


def test_a_failed_start_says_what_anvil_said() -> None:
    with pytest.raises(DevnetError, match="exited at start") as info:
        Anvil(extra_args=["--no-such-flag"]).start()
    assert "--no-such-flag" in str(info.value)


def test_rpc_errors_name_the_method(anvil: Anvil) -> None:
    with pytest.raises(DevnetError, match="evm_revert"):
        anvil.rpc("evm_revert", "not-a-snapshot-id")
