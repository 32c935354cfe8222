"""A reorg on a real anvil that removes a session's close yields the retraction event:
the indexer (with the event log as its store's hooks) indexes the close, the chain is
put back to before it and grows longer without it, and the log then holds, in order,
the close, its retraction (`<id>/retracted`), and nothing of the removed block after
that; the retraction is owed to the channel that had the close."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from chain import ChainClient
from database import open_database
from indexer import Indexer, IndexerStore
from notify import EventLog, EventReads, NotifySettings, Route, Router
from notify.outbox import Deliveries
from tests._chain import Chain
from tests.conftest import Roles, Session, Stack
from tests.indexer._support import FAST_RETRY, config, settle

OWNER_CLOSE = 0  # CloseReason.Owner


async def test_a_reorg_that_removes_a_close_retracts_it(
    tmp_path: Path,
    fresh_chain: Chain,
    stack: Stack,
    roles: Roles,
    make_session: Callable[..., Session],
) -> None:
    chain = fresh_chain
    session = make_session()
    cfg = NotifySettings.model_validate({"channels": [
        {"name": "closes", "type": "command", "command": ["/bin/true"],
         "kinds": ["session.closed"]},
    ]})  # fmt: skip
    db = await open_database(tmp_path / "w.sqlite")
    client = ChainClient([chain.anvil.url], retry=FAST_RETRY)
    try:
        log = EventLog(db)
        await log.setup()
        router = Router(db, [Route("closes", cfg.channels[0])])
        await router.start()
        store = IndexerStore(db, hooks=log)
        await store.setup()
        start = int(session.receipt["blockNumber"])
        indexer = Indexer(
            client, store, config(stack.factory.address, start_block=start),
            factory=stack.factory.address,
        )  # fmt: skip
        await settle(indexer)
        before_close = chain.snapshot()
        chain.send(session.wallet.functions.close(OWNER_CLOSE), roles.owner)
        await settle(indexer)
        reads = EventReads(db)
        kinds = [e.kind for e in (await reads.after(0, 100))[0]]
        assert kinds == ["session.created", "session.closed"]
        await router.drain()  # the close is owed before the reorg: routed apart
        chain.revert_to(before_close)  # the close's block leaves the chain
        for _ in range(3):  # and a longer branch without it takes its place
            chain.mine()
        await settle(indexer)
        events = (await reads.after(0, 100))[0]
        assert indexer.reorgs >= 1
        assert [e.kind for e in events] == ["session.created", "session.closed",
                                            "event.retracted"]  # fmt: skip
        close, retraction = events[1], events[2]
        assert retraction.id == close.id + "/retracted"
        assert retraction.body["data"]["retracts"] == close.id
        assert retraction.body["data"]["position"] == close.body["chain"]["position"]
        assert retraction.cursor > close.cursor
        await router.drain()
        owed = await Deliveries(db).page(0, 10)
        assert [(d.channel, d.event_id) for d in owed] == [
            ("closes", close.id), ("closes", retraction.id),
        ]  # fmt: skip
        reopened = await store.session(session.wallet.address)
        assert reopened is not None and reopened.status == "active"
    finally:
        await client.close()
        await db.close()
