"""The console in a real headless Chromium against a real `warden run` on anvil: it
loads behind the token (a wrong one refused), shows health and sessions, follows a
stop-loss fired on chain live (no reload) down to its transaction, filters and pages,
is reachable from the keyboard, shows an owner's hostile policy name as text, formats
uint256 amounts exactly, and fits a phone's width."""

from __future__ import annotations

import re
from urllib.parse import quote

import pytest
from playwright.sync_api import Page, Route, expect

from tests.conftest import TOKEN as UNIT
from tests.warden.app.console.conftest import TOKEN, Console, ThreadServer, sign_in
from tests.warden.cli.test_run_e2e import wait_for

pytestmark = pytest.mark.browser


# What each view shows once its data is in (the event stream stays open, so the network
# is never idle: wait for the content instead).
LOADED = {"#/": ".tile", "#/sessions": "tbody tr", "#/session/": ".pairs", "#/intents": ".chip"}


def shown(page: Page, hash_: str) -> None:
    expect(page.locator("#main h1")).to_be_visible()
    key = next(k for k in sorted(LOADED, key=len, reverse=True) if hash_.startswith(k))
    expect(page.locator(LOADED[key]).first).to_be_visible()
    expect(page.locator("#live")).to_have_text(re.compile("^Live: "))


def signed_in(page: Page, console: Console, hash_: str = "#/") -> None:
    sign_in(page, console)
    expect(page.locator("#login")).to_be_hidden()
    page.goto(f"{console.url}/{hash_}")
    expect(page.locator("#main h1")).to_be_visible()


def test_a_wrong_token_is_refused_and_the_right_one_opens_the_console(
    page: Page, console: Console
) -> None:
    page.goto(console.url + "/")
    expect(page.get_by_label("API token")).to_be_visible()
    expect(page.locator("#main")).to_be_hidden()  # nothing shown without the token
    for wrong in ("wrong", TOKEN + "x", TOKEN[:-1]):
        page.get_by_label("API token").fill(wrong)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("The daemon refused this token.")
        assert page.evaluate("sessionStorage.length") == 0
    page.get_by_label("API token").fill("токен")  # no header can carry it: said so, not sent
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("characters an HTTP header cannot carry")
    page.get_by_label("API token").fill(TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('warden.token')") == TOKEN
    assert TOKEN not in page.url
    # a reload keeps the tab signed in; signing out forgets the token
    page.reload()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_token_that_stops_working_sends_the_operator_back_to_sign_in(
    page: Page, console: Console
) -> None:
    signed_in(page, console)
    page.evaluate("sessionStorage.setItem('warden.token', 'revoked')")
    page.goto(f"{console.url}/#/sessions")
    expect(page.get_by_label("API token")).to_be_visible()
    expect(page.locator("#login-error")).to_contain_text("refused")


def test_overview_shows_health_at_a_glance(page: Page, console: Console) -> None:
    signed_in(page, console)
    status = console.api("/status")
    tiles = page.locator(".tiles .tile")
    expect(tiles.filter(has_text="Caught up")).to_contain_text("yes")
    expect(tiles.filter(has_text="Rules version")).to_contain_text(status["rules_version"])
    relayer = status["relayer"]["address"]
    expect(tiles.filter(has_text="Relayer").first.locator("[title]")).to_have_attribute(
        "title", relayer
    )
    # the balance is unknown until the executor first needs it: a dash, never a zero
    expect(tiles.filter(has_text="Relayer balance")).to_have_text(
        re.compile(r"Relayer balance(—|[0-9][0-9,]*(\.[0-9]+)? ETH)$")
    )
    wait_for(lambda: console.api("/status")["protection"] is not None, "the executor's figures")
    expect(tiles.filter(has_text="Circuit breaker")).to_contain_text("closed")  # live
    shown = page.locator(".tile", has_text="Chain head").locator("dd").inner_text()
    head = int(shown.replace(",", ""))
    assert head >= status["chain_head"] - 5


def test_sessions_appear_with_exact_amounts(page: Page, console: Console) -> None:
    odd = 1_234 * UNIT + 5  # 1,234.000000000000000005: beyond a double's precision
    s = console.session(deposit=odd, policy="exact-amounts")
    console.indexed(s.wallet.address)
    signed_in(page, console, "#/sessions?policy=exact-amounts")
    row = page.locator("tbody tr", has=page.locator(f'a[title="{s.wallet.address}"]'))
    expect(row).to_contain_text("1,234.000000000000000005")
    expect(row).to_contain_text("active")


def test_a_stop_loss_fired_on_chain_shows_up_live_with_its_transaction(
    page: Page, console: Console
) -> None:
    s = console.session(policy="")  # the generic stop-loss rule: at or below 200 tokens
    wallet = s.wallet.address
    console.indexed(wallet)
    signed_in(page, console, f"#/session/{wallet}")
    expect(page.locator("#main")).to_contain_text("No rule has fired for this session.")
    page.evaluate("window.__notReloaded = true")
    console.chain.send(s.wallet.functions.withdraw(850 * UNIT), console.roles.owner)

    firing = page.locator("li.intent")
    expect(firing).to_contain_text("stop-loss → close", timeout=120_000)
    expect(firing.locator(".badge").first).to_have_text("confirmed", timeout=120_000)
    detail = console.api(f"/sessions/{wallet}")
    (intent,) = detail["intents"]
    mined = intent["job"]["mined_hash"]
    (log,) = s.wallet.events.Closed().get_logs(from_block=s.receipt["blockNumber"])
    assert mined == "0x" + bytes(log["transactionHash"]).hex().removeprefix("0x")
    expect(firing.locator(".tx-hash").first).to_have_text(intent["transactions"][0]["hash"])
    expect(firing.locator(".tx-mined")).to_have_text(mined)
    expect(page.locator(".pairs").first).to_contain_text("stop loss")
    expect(page.locator("#main")).to_contain_text("Closed · block")  # the timeline grew
    assert page.evaluate("window.__notReloaded") is True  # the same page, updated in place

    # the intents view lists it with its reason; the overview's chart counts the close
    page.goto(f"{console.url}/#/intents?state=confirmed")
    row = page.locator("tbody tr", has=page.locator(f'a[title="{wallet}"]'))
    expect(row).to_contain_text("stop loss")
    expect(page.locator(".chip[aria-current=true]")).to_contain_text("confirmed")
    page.goto(f"{console.url}/#/")
    chart = page.get_by_role("img", name="Closes by reason over time")
    expect(chart).to_be_visible()
    expect(page.locator(".legend")).to_contain_text("stop loss")
    expect(page.get_by_role("img", name=re.compile("Reaction latency"))).to_be_visible()


def test_the_event_stream_is_read_with_the_token_in_a_header_and_feeds_the_overview(
    page: Page, console: Console
) -> None:
    streams: list[tuple[str, dict[str, str]]] = []
    page.on("request", lambda r: streams.append((r.url, r.headers)) if "/stream" in r.url else None)
    signed_in(page, console)
    expect(page.locator("#live")).to_have_text("Live: event stream")
    assert streams, "the console opened no event stream"
    for url, headers in streams:
        assert TOKEN not in url and headers["authorization"] == f"Bearer {TOKEN}", (url, headers)
    expect(page.locator("#main")).to_contain_text("No event since this page opened")
    s = console.session(policy="")
    console.chain.send(s.wallet.functions.withdraw(850 * UNIT), console.roles.owner)
    feed = page.locator(".feed-item", has=page.locator(f'a[title="{s.wallet.address}"]'))
    # the session's lifecycle and the rule's intent, each once, as they happen
    kinds = ("session.created", "session.withdrawn", "intent.fired", "session.closed",
             "intent.confirmed")  # fmt: skip
    for kind in kinds:
        expect(feed.filter(has_text=kind)).to_have_count(1, timeout=90_000)
    expect(feed.filter(has_text="session.closed")).to_contain_text("reason: stop_loss")
    expect(feed.filter(has_text="intent.fired")).to_contain_text("rule: stop-loss")
    shown = feed.all_inner_texts()  # newest first
    at = {kind: next(i for i, text in enumerate(shown) if kind in text) for kind in kinds}
    assert at["session.created"] > at["session.withdrawn"] > at["intent.fired"], shown
    assert at["intent.fired"] > at["session.closed"] > at["intent.confirmed"], shown


def test_without_an_event_stream_the_console_polls(page: Page, console: Console) -> None:
    page.route(re.compile(r"/stream(\?|$)"), lambda route: route.fulfill(
        status=404, json={"error": {"status": 404, "code": "not_found", "message": "no"}}
    ))  # an older daemon  # fmt: skip
    signed_in(page, console, "#/sessions?policy=polled")
    expect(page.locator("#live")).to_have_text("Live: polling every 2 s")
    page.evaluate("window.__notReloaded = true")
    s = console.session(policy="polled")
    expect(page.locator(f'tbody a[title="{s.wallet.address}"]')).to_be_visible(timeout=90_000)
    assert page.evaluate("window.__notReloaded") is True
    page.goto(f"{console.url}/#/")
    expect(page.locator("#main")).to_contain_text("This daemon has no event stream")


def test_a_new_session_appears_in_the_open_table_without_reload(
    page: Page, console: Console
) -> None:
    signed_in(page, console, "#/sessions?policy=live-table")
    expect(page.locator("td.empty")).to_have_text("No session matches.")
    expect(page.locator("#live")).to_have_text(re.compile("^Live: (event stream|polling)"))
    page.evaluate("window.__notReloaded = true")
    s = console.session(policy="live-table")
    expect(page.locator(f'tbody a[title="{s.wallet.address}"]')).to_be_visible(timeout=90_000)
    assert page.evaluate("window.__notReloaded") is True


def test_a_bad_or_unknown_wallet_is_said_plainly(page: Page, console: Console) -> None:
    signed_in(page, console, "#/session/0xnot-an-address")
    expect(page.get_by_role("alert")).to_contain_text("(parameter: wallet)")
    page.goto(f"{console.url}/#/session/%zz")  # a malformed escape: no script error either
    expect(page.get_by_role("heading", name=re.compile("Session %zz"))).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("(parameter: wallet)")
    unknown = "0x" + "ab" * 20
    page.goto(f"{console.url}/#/session/{unknown}")
    expect(page.get_by_role("alert")).to_have_text(f"No session {unknown} is indexed (yet).")


def test_filters_narrow_the_table_and_a_bad_owner_names_the_parameter(
    page: Page, console: Console
) -> None:
    mine = console.session(console.roles.owner2, policy="filter-me")
    other = console.session(policy="filter-me")
    console.indexed(mine.wallet.address)
    console.indexed(other.wallet.address)
    signed_in(page, console, "#/sessions")
    page.get_by_label("Policy").fill("filter-me")
    page.get_by_label("Owner").fill(console.roles.owner2.lower())  # any case
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("a")).to_have_attribute("title", mine.wallet.address)
    assert "owner=" in page.url and TOKEN not in page.url
    page.get_by_label("Status").select_option("closed")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("td.empty")).to_have_text("No session matches.")
    page.get_by_label("Owner").fill("0x1234")
    page.get_by_role("button", name="Apply").click()
    expect(page.get_by_role("alert")).to_contain_text("parameter: owner")


def test_paging_walks_every_session_once_and_back(page: Page, console: Console) -> None:
    made = [console.session(policy="paging").wallet.address for _ in range(5)]
    for wallet in made:
        console.indexed(wallet)
    signed_in(page, console, "#/sessions?policy=paging&limit=2")
    seen: list[str] = []
    pages: list[list[str]] = []
    while True:
        links = page.locator("tbody tr a")
        expect(links.first).to_be_visible()
        wallets = [str(a.get_attribute("title")) for a in links.all()]
        pages.append(wallets)
        seen += wallets
        expect(page.locator(".page-no")).to_contain_text(f"Page {len(pages)}")
        nxt = page.get_by_role("button", name="Next page →")
        if nxt.is_disabled():
            break
        nxt.click()
        expect(page.locator(".page-no")).to_contain_text(f"Page {len(pages) + 1}")
    assert seen == made and [len(p) for p in pages] == [2, 2, 1]
    page.get_by_role("button", name="← Previous page").click()
    expect(page.locator(".page-no")).to_contain_text("Page 2")
    assert [a.get_attribute("title") for a in page.locator("tbody tr a").all()] == pages[1]


def test_keyboard_reaches_the_controls(page: Page, console: Console) -> None:
    s = console.session(policy="keyboard")
    console.indexed(s.wallet.address)
    page.goto(console.url + "/")
    expect(page.get_by_label("API token")).to_be_focused()  # the sign-in form takes focus
    page.keyboard.type(TOKEN)
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    page.goto(f"{console.url}/#/sessions?policy=keyboard")
    page.reload()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.keyboard.press("Tab")  # the skip link first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")
        reached.append(page.evaluate(
            "(() => { const e = document.activeElement;"
            " return e.id || e.getAttribute('aria-label') || e.textContent.trim(); })()"
        ))  # fmt: skip
        if reached[-1].startswith("0x"):
            break
    for control in ("Sessions", "f-owner", "f-status", "f-policy", "Apply", "Clear"):
        assert control in reached, reached
    page.keyboard.press("Enter")  # the focused session link opens the session
    expect(page.get_by_role("heading", name=re.compile("Session 0x"))).to_be_focused()
    assert page.url.endswith(f"#/session/{s.wallet.address}")


def test_an_owners_hostile_policy_name_is_shown_as_text(page: Page, console: Console) -> None:
    # the contract takes up to 32 bytes of policy name, whatever they are
    names = ["<img src=x onerror=__pwned=1>", "<script>__pwned=2</script>", "<b>&amp;</b>\u202e"]
    sessions = [console.session(policy=name) for name in names]
    for s in sessions:
        console.indexed(s.wallet.address)
    signed_in(page, console)
    for name, s in zip(names, sessions, strict=True):
        page.goto(f"{console.url}/#/session/{s.wallet.address}")
        expect(page.locator(".pairs .policy")).to_have_text(name)
        expect(page.locator(".timeline dd", has_text=name[:6]).first).to_have_text(name)
    page.goto(f"{console.url}/#/sessions?policy={quote(names[0])}")
    expect(page.locator("td .policy")).to_have_text(names[0])
    page.goto(f"{console.url}/#/sessions")
    expect(page.locator("td .policy", has_text="<b>")).to_have_text(names[2])
    assert page.locator("#main img, #main script, #main b").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_the_console_fits_a_phone(page: Page, console: Console) -> None:
    s = console.session(policy="phone")
    console.indexed(s.wallet.address)
    signed_in(page, console)
    page.set_viewport_size({"width": 390, "height": 844})
    for hash_ in ("#/", "#/sessions", f"#/session/{s.wallet.address}", "#/intents"):
        page.goto(f"{console.url}/{hash_}")
        shown(page, hash_)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, (hash_, width)


def test_uint256_amounts_are_formatted_exactly(page: Page, console: Console) -> None:
    page.goto(console.url + "/")
    units = page.evaluate(
        "async () => { const f = await import('/console/format.js');"
        " return [f.units((2n ** 256n - 1n).toString(), 18), f.units('5', 18), f.units('0', 6),"
        " f.units('1000000', 6), f.units('123', 0)]; }"
    )
    assert units == [
        "115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457.584007913129639935",
        "0.000000000000000005", "0", "1", "123",
    ]  # fmt: skip


CONTRAST = """() => {
  const parse = (c) => {
    const p = c.match(/rgba?\\(([^)]+)\\)/)[1].split(",").map(Number);
    return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
  };
  const lum = ({ r, g, b }) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c.a > 0.5) return c;
    }
    return { r: 255, g: 255, b: 255, a: 1 };
  };
  const bad = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const text = walker.currentNode;
    const el = text.parentElement;
    if (!text.textContent.trim() || el.closest("svg, [hidden], button:disabled")) continue;
    const s = getComputedStyle(el);
    if (!el.getClientRects().length || s.visibility === "hidden") continue;
    const a = lum(parse(s.color)), b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const size = parseFloat(s.fontSize), bold = Number(s.fontWeight) >= 700;
    if (ratio < (size >= 24 || (size >= 18.66 && bold) ? 3 : 4.5)) {
      bad.push(`${text.textContent.trim().slice(0, 40)}: ${ratio.toFixed(2)}`);
    }
  }
  return bad;
}"""


def test_text_meets_wcag_aa_contrast_on_every_view(page: Page, console: Console) -> None:
    s = console.session(policy="contrast")
    console.indexed(s.wallet.address)
    signed_in(page, console)
    for hash_ in ("#/", "#/sessions", f"#/session/{s.wallet.address}", "#/intents"):
        page.goto(f"{console.url}/{hash_}")
        shown(page, hash_)
        assert page.evaluate(CONTRAST) == [], hash_
    page.evaluate("sessionStorage.clear()")
    page.reload()
    expect(page.get_by_label("API token")).to_be_visible()
    assert page.evaluate(CONTRAST) == [], "sign-in form"
    # the check itself can fail: light grey on the light background is flagged
    page.evaluate(
        "() => { const p = document.createElement('p'); p.textContent = 'faint';"
        " p.style.color = '#aaaaaa'; document.body.append(p); }"
    )
    assert page.evaluate(CONTRAST) == ["faint: 2.17"]  # on the page background


def test_without_a_token_the_console_opens_directly(
    page: Page, console: Console, open_console: ThreadServer
) -> None:
    s = console.session(policy="open-console")
    console.indexed(s.wallet.address)
    page.goto(f"{open_console.url}/#/sessions?policy=open-console")
    expect(page.locator(f'tbody a[title="{s.wallet.address}"]')).to_be_visible()
    expect(page.locator("#login")).to_be_hidden()
    expect(page.get_by_role("button", name="Sign out")).to_be_hidden()
    assert page.evaluate("sessionStorage.length") == 0


def test_a_daemon_that_goes_away_is_shown_offline_and_followed_again_when_back(
    page: Page, console: Console, open_console: ThreadServer
) -> None:
    page.goto(f"{open_console.url}/#/sessions?policy=comes-back")
    expect(page.locator("td.empty")).to_have_text("No session matches.")
    live = page.locator("#live")
    expect(live).to_have_text(re.compile("^Live: "))
    page.evaluate("window.__notReloaded = true")
    open_console.stop()
    expect(live).to_have_text(re.compile("^Offline: the daemon cannot be reached"), timeout=30_000)
    s = console.session(policy="comes-back")  # happens while the console is cut off
    console.indexed(s.wallet.address)
    open_console.start()
    expect(live).to_have_text(re.compile("^Live: "))
    expect(page.locator(f'tbody a[title="{s.wallet.address}"]')).to_be_visible()
    assert page.evaluate("window.__notReloaded") is True


def test_breaker_alerts_and_a_standby_role_are_shown(page: Page, console: Console) -> None:
    """States a devnet cannot be put in on demand (an open circuit breaker, paused
    sending, a standby replica on PostgreSQL) in the daemon's real /status, altered in
    flight; an alert's message (which quotes node answers) stays text."""
    signed_in(page, console)
    hostile = "<img src=x onerror=__pwned=1>node said so"

    def altered(route: Route) -> None:
        body = route.fetch().json()
        body["protection"] = {
            "circuit_breaker_open": True, "gas_budget_per_hour": 1_000_000,
            "gas_in_window": 1_200_000, "gas_spent_total": 5_000_000,
            "sending_paused": "the node contradicts itself",
            "alerts": [
                {"kind": "gas_budget", "message": "over budget", "at_ms": 1_700_000_000_000},
                {"kind": "node_inconsistent", "message": hostile, "at_ms": 1_700_000_001_000},
            ],
        }  # fmt: skip
        body["leadership"] = {"role": "standby", "epoch": None, "identity": "b",
                              "leader": "replica-a", "takeovers": 0, "shared": True}  # fmt: skip
        route.fulfill(json=body)

    page.route(re.compile(r"/status$"), altered)
    page.reload()  # read /status now, not at the next 5 s poll
    tiles = page.locator(".tiles .tile")
    expect(tiles.filter(has_text="Circuit breaker")).to_contain_text("open: sending stopped")
    expect(tiles.filter(has_text="Sending paused")).to_contain_text("the node contradicts itself")
    expect(tiles.filter(has_text="Role")).to_contain_text("standby")
    expect(tiles.filter(has_text="Leader")).to_contain_text("replica-a")
    expect(tiles.filter(has_text="Gas in last hour")).to_contain_text("1,200,000 of 1,000,000")
    alerts = page.locator(".alerts li")
    expect(alerts).to_have_count(2)
    expect(alerts.first).to_contain_text(hostile)  # newest first, as text
    assert page.locator("#main img").count() == 0 and page.evaluate("window.__pwned") is None
