// #/session/0x… : one session — parameters, balance and budget, every rule firing with
// its intent, job, transactions (replacements too) and refusals, and the event timeline.

import { h } from "./dom.js";
import { get, ApiError } from "./api.js";
import { chainTime, wallTime, ether, integer, share, words } from "./format.js";
import { amount, addr, badge, errorBox, table, update } from "./widgets.js";

// Event arguments that are amounts of the session's token.
const TOKEN_ARGS = new Set(["amount", "balance", "deposit", "refund", "fee", "budget", "spent",
  "stopLoss", "takeProfit", "value", "withdrawn", "initialDeposit", "remaining", "balanceAfter",
  "previousBalance", "newBudget"]);
const TIME_ARGS = new Set(["expiry", "newExpiry"]);

function dl(pairs) {
  return h("dl", { class: "pairs" }, pairs.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
}

function meter(label, part, whole) {
  const pct = share(part, whole);
  const bar = h("div", { class: "bar", role: "meter", "aria-label": label, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(pct) },
    h("div", { class: "fill" }));
  bar.firstChild.style.width = `${Math.min(100, pct)}%`; // CSSOM: allowed by the CSP, an inline style attribute is not
  return bar;
}

function parameters(s, d) {
  const money = (v) => amount(v, d);
  return h("section", { class: "card", "aria-labelledby": "p-title" },
    h("h2", { id: "p-title" }, "Parameters"),
    dl([
      ["Status", [badge(s.status), s.close_reason ? [" ", badge(s.close_reason, "reason")] : null, s.closed_by ? ` by ${s.closed_by}` : null]],
      ["Owner", h("span", { class: "mono break" }, s.owner)],
      ["Operator", h("span", { class: "mono break" }, s.operator)],
      ["Token", [h("span", { class: "mono break" }, s.token), d === null ? " (decimals not known yet)" : ` (${d} decimals)`]],
      ["Policy", h("span", { class: "policy" }, s.policy === "" ? "—" : s.policy)],
      ["Targets", s.targets.length ? h("ul", { class: "plain" }, s.targets.map((t) => h("li", { class: "mono break" }, t))) : "none"],
      ["Stop-loss", s.stop_loss === "0" ? "none" : money(s.stop_loss)],
      ["Take-profit", s.take_profit === "0" ? "none" : money(s.take_profit)],
      ["Expiry", s.expiry === "0" ? "none" : chainTime(s.expiry)],
      ["Fee paid", money(s.fee)],
      ["Created", `${chainTime(s.created_at)} · block ${integer(s.created_block)}`],
      ["Last activity", chainTime(s.last_activity)],
      s.revoked_at ? ["Revoked", chainTime(s.revoked_at)] : null,
      s.closed_at ? ["Closed", chainTime(s.closed_at)] : null,
      ["Executions", integer(s.execution_count)],
      s.seq_gaps ? ["Sequence gaps", `${s.seq_gaps}: ${s.gap_note || ""}`] : null,
    ].filter(Boolean)));
}

function money(s, d) {
  return h("section", { class: "card", "aria-labelledby": "m-title" },
    h("h2", { id: "m-title" }, "Balance and budget"),
    h("p", { class: "big num" }, amount(s.balance, d)),
    dl([
      ["Deposited", amount(s.deposit, d)],
      ["Initial deposit", amount(s.initial_deposit, d)],
      ["Withdrawn", amount(s.withdrawn, d)],
      ["Refunded", amount(s.refund, d)],
      ["Spent", [amount(s.spent, d), " of ", amount(s.budget, d)]],
      ["Budget left", amount(s.remaining_budget, d)],
    ]),
    s.budget !== "0" ? meter("Budget spent (percent)", s.spent, s.budget) : null);
}

function intentCard(i) {
  const job = i.job;
  return h("li", { class: "intent card", "data-intent": String(i.id) },
    h("h3", {}, `${i.rule} → ${i.action}`, " ", badge(i.state)),
    dl([
      ["Reason", badge(i.reason, "reason")],
      ["Triggered", `${chainTime(i.triggered_at)} · block ${integer(i.block)}`],
      ["Stored", wallTime(i.created_ms)],
      ["Updated", wallTime(i.updated_ms)],
      i.detail ? ["Detail", h("span", { class: "detail" }, i.detail)] : null,
      ["Rules version", h("span", { class: "mono" }, i.rules_version)],
    ].filter(Boolean)),
    job ? h("div", { class: "job" },
      h("h4", {}, `Job ${job.id}: ${job.kind}`, " ", badge(job.state)),
      dl([
        ["Nonce", job.nonce === null ? "—" : String(job.nonce)],
        ["Gas limit", integer(job.gas)],
        job.mined_hash ? ["Mined", [h("span", { class: "mono break tx-mined" }, job.mined_hash), ` in block ${integer(job.mined_block)}, status ${job.receipt_status}`]] : null,
        job.gas_used !== null ? ["Gas used", integer(job.gas_used)] : null,
        job.fee_paid !== null ? ["Fee paid", ether(job.fee_paid)] : null,
      ].filter(Boolean))) : h("p", { class: "muted" }, "No job (nothing sent for this intent)."),
    i.transactions.length ? table({
      caption: `Transactions of intent ${i.id} (replacements included)`,
      columns: [
        { label: "Hash", cell: (t) => h("span", { class: "mono break tx-hash" }, t.hash) },
        { label: "Nonce", class: "num", cell: (t) => String(t.nonce) },
        { label: "Max fee", class: "num", cell: (t) => `${integer(t.max_fee_per_gas)} wei` },
        { label: "Priority fee", class: "num wide", cell: (t) => `${integer(t.max_priority_fee_per_gas)} wei` },
        { label: "State", cell: (t) => [badge(t.state), t.error ? ` ${t.error}` : null] },
        { label: "Sent", class: "wide", cell: (t) => wallTime(t.sent_ms) },
      ],
      rows: i.transactions,
    }) : null,
    i.refusals.length ? h("div", { class: "refusals" },
      h("h4", {}, "Refused by guards"),
      h("ul", {}, i.refusals.map((r) => h("li", {}, h("strong", {}, r.guard), `: ${r.reason} (${wallTime(r.at_ms)})`)))) : null);
}

function eventItem(e, d) {
  const args = Object.entries(e.args).map(([k, v]) => [
    h("dt", {}, k),
    h("dd", {}, /^[0-9]+$/.test(String(v)) && TOKEN_ARGS.has(k) ? amount(String(v), d)
      : /^[0-9]+$/.test(String(v)) && TIME_ARGS.has(k) ? `${chainTime(v)} (${v})` : String(v)),
  ]);
  return h("li", { class: "event" },
    h("p", { class: "when" }, h("strong", {}, e.name), ` · block ${integer(e.block_number)} · ${chainTime(e.timestamp)}`),
    args.length ? h("dl", { class: "args" }, args) : null,
    h("p", { class: "mono muted break" }, `tx ${e.tx_hash}`));
}

export function mount(root, ctx, params) {
  const wallet = params.wallet;
  const head = h("div", {});
  const body = h("div", { class: "session-grid" });
  const firings = h("section", { "aria-labelledby": "f-title" });
  const timeline = h("section", { "aria-labelledby": "t-title" });
  root.append(
    h("p", {}, h("a", { href: "#/sessions" }, "← Sessions")),
    h("h1", { class: "break" }, "Session ", h("span", { class: "mono" }, wallet)),
    head, body, firings, timeline);
  let events = [];
  let eventsDone = false;

  async function loadEvents(more) {
    // The timeline is read in pages; a refresh reads from the start up to what was shown.
    const out = [];
    let cursor = null;
    for (;;) {
      const page = await get(`/sessions/${encodeURIComponent(wallet)}/events`, { cursor, limit: 200 });
      out.push(...page.items);
      cursor = page.next_cursor;
      if (cursor === null || (!more && out.length >= Math.max(events.length, 200))) break;
      if (more && out.length >= events.length + 200) break;
    }
    events = out;
    eventsDone = cursor === null;
  }

  async function load(more = false) {
    let detail;
    try {
      detail = await get(`/sessions/${encodeURIComponent(wallet)}`);
      await loadEvents(more);
    } catch (err) {
      ctx.failed(err);
      const gone = err instanceof ApiError && err.status === 404;
      update(head, { error: err.message }, () => gone ? h("p", { class: "error", role: "alert" }, `No session ${wallet} is indexed (yet).`) : errorBox(err));
      return;
    }
    const s = detail.session;
    const d = ctx.decimals(s.token);
    update(head, { ok: true }, () => []);
    update(body, { s, d }, () => [parameters(s, d), money(s, d)]);
    update(firings, { intents: detail.intents }, () => [
      h("h2", { id: "f-title" }, `Rule firings (${detail.intents.length})`),
      detail.intents.length
        ? h("ol", { class: "intents plain" }, detail.intents.map(intentCard))
        : h("p", { class: "muted" }, "No rule has fired for this session."),
    ]);
    update(timeline, { events, d, eventsDone }, () => [
      h("h2", { id: "t-title" }, `Event timeline (${events.length}${eventsDone ? "" : "+"})`),
      h("ol", { class: "timeline" }, events.map((e) => eventItem(e, d))),
      eventsDone ? null : h("button", { type: "button", class: "quiet", "data-action": "more-events", onclick: () => load(true) }, "Load more events"),
    ]);
  }

  load();
  return { refresh: () => load(false) };
}
