"""The prepare routes served over real HTTP against anvil, and the owner's side: sign the
answered transactions with the owner's key (eth_account) and send them raw."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer
from eth_account import Account

from tests._chain import Chain
from tests.indexer._support import config, index_to_head
from tests.warden.app.api._schema import errors
from warden.app.api import LiveState, create_app
from warden.app.api.prepare_chain import Preparation
from warden.devnet.anvil import DEVNET_KEYS

CHAIN_ID = 31337


class PrepareApi:
    def __init__(self, server: TestServer, http: aiohttp.ClientSession, token: str | None) -> None:
        self.server = server
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.document: dict[str, Any] = {}

    async def post(
        self, path: str, body: Any, *, content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:  # fmt: skip
        # json, not orjson: it writes any int, and lone surrogates as \u escapes
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        sent = {"Content-Type": content_type, **self.headers, **(headers or {})}
        async with self.http.post(self.server.make_url(path), data=data, headers=sent) as r:
            answer = await r.json() if r.content_type == "application/json" else await r.text()
        if isinstance(answer, dict) and self.document:
            check_post(self.document, path.partition("?")[0], r.status, answer)
        return r.status, answer

    async def ok(self, path: str, body: Any) -> dict[str, Any]:
        status, answer = await self.post(path, body)
        assert status == 200, (path, status, answer)
        assert isinstance(answer, dict)
        return answer

    async def get(self, path: str) -> tuple[int, Any]:
        async with self.http.get(self.server.make_url(path), headers=self.headers) as r:
            return r.status, await r.json()


def check_post(document: dict[str, Any], path: str, status: int, body: Any) -> None:
    """The answer is documented for the route: its status, and its body's schema."""
    responses = document["paths"][path]["post"]["responses"]
    assert str(status) in responses, f"POST {path} answered an undocumented {status}: {body}"
    (content,) = responses[str(status)]["content"].values()
    problems = errors(document, content["schema"], body)
    assert not problems, f"POST {path} {status} breaks its documented schema: {problems[:5]}"


@contextlib.asynccontextmanager
async def serve_prepare(
    db: Path,
    chain: Chain,
    factory: str,
    *,
    token: str | None = None,
    rpc: str | None = None,
    **settings: Any,
) -> AsyncIterator[PrepareApi]:
    """The API with its prepare routes asking anvil (or `rpc`), on 127.0.0.1; the
    database indexed from anvil first, so it exists."""
    if not db.exists():
        await index_to_head(chain.anvil.url, db, config(factory))
    prep = Preparation((rpc or chain.anvil.url,), factory, CHAIN_ID, **settings)
    app = create_app(db, LiveState(), token=token, prepare=prep)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            api = PrepareApi(server, http, token)
            _, api.document = await api.get("/openapi.json")
            yield api
    finally:
        await server.close()


def key_of(chain: Chain, who: str) -> str:
    return DEVNET_KEYS[[str(a) for a in chain.accounts].index(who)]


def send_prepared(
    chain: Chain, txs: Sequence[Mapping[str, Any]], key: str, *, succeed: bool = True
) -> list[Any]:
    """Sign each answered transaction as it is with `key` and send it raw; the receipts
    (each must succeed, unless not `succeed`)."""
    receipts = []
    for tx in txs:
        assert Account.from_key(key).address == tx["from"], tx
        assert tx["type"] == "0x2" and tx["chain_id"] == CHAIN_ID, tx
        fields = {
            "type": 2, "chainId": tx["chain_id"], "nonce": tx["nonce"], "to": tx["to"],
            "data": tx["data"], "value": int(tx["value"]), "gas": tx["gas"],
            "maxFeePerGas": int(tx["max_fee_per_gas"]),
            "maxPriorityFeePerGas": int(tx["max_priority_fee_per_gas"]),
        }  # fmt: skip
        signed = Account.sign_transaction(fields, key)
        tx_hash = chain.anvil.rpc("eth_sendRawTransaction", "0x" + signed.raw_transaction.hex())
        deadline = time.monotonic() + 60
        while (receipt := chain.anvil.rpc("eth_getTransactionReceipt", tx_hash)) is None:
            assert time.monotonic() < deadline, f"{tx['step']} not mined in 60 s"
            time.sleep(0.01)
        assert receipt["status"] == "0x1" or not succeed, (tx["step"], receipt)
        assert int(receipt["gasUsed"], 16) <= tx["gas"], (tx["step"], receipt["gasUsed"])
        receipts.append(receipt)
    return receipts


async def indexed_session(
    api: PrepareApi, chain: Chain, db: Path, factory: str, wallet: str
) -> Any:
    """Run the real indexer over the chain into `db`, then the session as the API shows it."""
    await index_to_head(chain.anvil.url, db, config(factory))
    status, body = await api.get(f"/sessions/{wallet}")
    assert status == 200, (status, body)
    return body["session"]
