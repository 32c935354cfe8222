"""A session's whole history on its console page, in headless Chromium: an intent whose
close was replaced by a fee bump (both signed transactions listed, the mined one
marked), one the guards refused twice (each refusal with its guard and reason), and a
sweep whose job was dropped before it went obsolete. The database is the API tests'
(real chain activity indexed, an outbox written through the executor's own layer),
served by the API app without a token."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.warden.app.api.conftest import Indexed, indexed  # noqa: F401 - the fixture
from tests.warden.app.console.conftest import ThreadServer, browser  # noqa: F401 - fixture

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served(indexed: Indexed, browser: Any) -> Iterator[ThreadServer]:  # noqa: F811
    server = ThreadServer(indexed.path)
    server.start()
    try:
        yield server
    finally:
        server.close()


def _get(server: ThreadServer, path: str) -> Any:
    with urllib.request.urlopen(server.url + path, timeout=30) as r:
        return json.loads(r.read())


def _intent(server: ThreadServer, key: str) -> dict[str, Any]:
    cursor = ""
    while True:
        page = _get(server, "/intents?limit=1000" + cursor)
        for intent in page["items"]:
            if intent["key"] == key:
                return dict(intent)
        assert page["next_cursor"], key
        cursor = "&cursor=" + page["next_cursor"]


@pytest.fixture
def tab(browser: Any) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert errors == [], errors


def test_a_replaced_transaction_refusals_and_a_dropped_job_are_all_shown(
    chromium: str,
    indexed: Indexed,  # noqa: F811 - first: it runs asyncio, which Playwright's loop forbids
    served: ThreadServer,
    tab: Page,
) -> None:
    done = _intent(served, indexed.intent_keys["done"])
    tab.goto(f"{served.url}/#/session/{done['wallet']}")
    card = tab.locator(f'li.intent[data-intent="{done["id"]}"]')
    expect(card).to_contain_text("confirmed")
    hashes = card.locator(".tx-hash")
    expect(hashes).to_have_count(2)  # the first attempt and its fee bump
    assert hashes.all_inner_texts() == [indexed.tx_hashes["first"], indexed.tx_hashes["mined"]]
    expect(card.locator(".tx-mined")).to_have_text(indexed.tx_hashes["mined"])
    expect(card.locator("tbody tr").nth(0)).to_contain_text("2,000,000,000 wei")
    expect(card.locator("tbody tr").nth(1)).to_contain_text("3,000,000,000 wei")
    expect(card).to_contain_text("Gas used61,234")
    # fee paid: 61,234 gas at 2,500,000,007 wei, exactly (integers, never a float)
    whole, frac = divmod(61_234 * 2_500_000_007, 10**18)
    expect(card).to_contain_text(f"Fee paid{whole}.{frac:018d}".rstrip("0") + " ETH")

    waiting = _intent(served, indexed.intent_keys["waiting"])
    tab.goto(f"{served.url}/#/session/{waiting['wallet']}")
    card = tab.locator(f'li.intent[data-intent="{waiting["id"]}"]')
    refusals = card.locator(".refusals li")
    expect(refusals).to_have_count(2)
    expect(refusals.nth(0)).to_contain_text("rate: 3 jobs in the last hour")
    expect(refusals.nth(1)).to_contain_text("balance: relayer balance below 0.01 ETH")
    expect(card).to_contain_text("No job (nothing sent for this intent).")

    dropped = _intent(served, indexed.intent_keys["dropped"])
    tab.goto(f"{served.url}/#/session/{dropped['wallet']}")
    card = tab.locator(f'li.intent[data-intent="{dropped["id"]}"]')
    expect(card).to_contain_text("obsolete")
    expect(card).to_contain_text("session closed meanwhile")

    tab.goto(f"{served.url}/#/intents?state=obsolete")
    row = tab.locator("tbody tr", has=tab.locator(f'a[title="{dropped["wallet"]}"]'))
    expect(row).to_contain_text("session closed meanwhile")
    expect(row).to_contain_text("swept")
