"""The daemon serves the prepare routes (asking the configured node), unless
`api.prepare` is false: then they do not exist."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import aiohttp

from tests._chain import Chain
from tests.conftest import FEE_BPS, Roles, Stack
from tests.warden.app.api._prepare import key_of, send_prepared
from tests.warden.app.test_daemon import get, plan, running, until
from warden.app.settings import ApiConfig
from warden.devnet import Anvil, free_port


async def _post(port: int, path: str, body: Any) -> tuple[int, Any]:
    url = f"http://127.0.0.1:{port}{path}"
    async with aiohttp.ClientSession() as http, http.post(url, json=body) as r:
        return r.status, await r.json(content_type=None)


async def test_the_daemon_serves_prepare_and_api_prepare_false_turns_it_off(
    anvil: Anvil, fresh_chain: Chain, stack: Stack, roles: Roles, tmp_path: Path
) -> None:
    body = {
        "owner": roles.owner, "operator": roles.operator, "token": stack.token.address,
        "deposit": "5000", "expiry": fresh_chain.now() + 3600, "budget": "1",
        "max_fee_bps": FEE_BPS,
    }  # fmt: skip
    start = fresh_chain.w3.eth.block_number + 1
    for prepare in (True, False):
        port = free_port()
        cfg, target = plan(anvil, stack, tmp_path / f"w{prepare}.db", start, port)
        cfg = cfg.model_copy(update={"api": ApiConfig(port=port, prepare=prepare)})
        async with running((cfg, target)):

            async def up(port: int = port) -> bool:
                with contextlib.suppress(aiohttp.ClientError):
                    return (await get(port, "/health"))[0] == 200
                return False

            await until(up)
            status, answer = await _post(port, "/prepare/create", body)
            _, document = await get(port, "/openapi.json")
            if not prepare:
                assert status == 404, answer
                assert "/prepare/create" not in document["paths"]
                continue
            assert status == 200, answer
            assert "/prepare/create" in document["paths"]
            send_prepared(fresh_chain, answer["transactions"], key_of(fresh_chain, roles.owner))
            assert fresh_chain.w3.eth.get_code(answer["wallet"]) != b""
