// #/intents?state=&rule= : intents by state, each with its reason.

import { h } from "./dom.js";
import { get } from "./api.js";
import { chainTime, wallTime } from "./format.js";
import { badge, errorBox, sessionLink, table, update, Pager } from "./widgets.js";

const STATES_NOTE = "Every intent is one rule firing: its state says how far sending it got.";

export function mount(root, ctx, params) {
  const state = params.state || "";
  const counts = h("nav", { class: "chips", "aria-label": "Intents by state" });
  const results = h("div", { class: "results" });
  const pager = new Pager(() => load());
  root.append(h("h1", {}, "Intents"), h("p", { class: "muted" }, STATES_NOTE), counts, results);

  function showCounts(status) {
    const byState = status ? status.intents : {};
    const total = Object.values(byState).reduce((a, b) => a + b, 0);
    update(counts, { byState, state }, () => h("ul", {},
      [["", total], ...Object.entries(byState)].map(([name, n]) =>
        h("li", {}, h("a", {
          href: name ? `#/intents?state=${encodeURIComponent(name)}` : "#/intents",
          class: "chip", "aria-current": name === state ? "true" : null,
        }, `${name || "all"} `, h("span", { class: "count" }, String(n)))))));
  }

  async function load() {
    showCounts(ctx.status);
    try {
      const page = await get("/intents", { state, limit: 50, cursor: pager.cursor });
      pager.next = page.next_cursor;
      update(results, { page, stack: pager.stack.length }, () => [
        table({
          caption: state ? `Intents in state ${state}` : "Intents",
          columns: [
            { label: "Id", class: "num", cell: (i) => String(i.id) },
            { label: "Session", cell: (i) => sessionLink(i.wallet) },
            { label: "Rule", cell: (i) => i.rule },
            { label: "Action", cell: (i) => i.action },
            { label: "Reason", cell: (i) => badge(i.reason, "reason") },
            { label: "State", cell: (i) => badge(i.state) },
            { label: "Detail", class: "detail", cell: (i) => i.detail || "—" },
            { label: "Triggered", class: "wide", cell: (i) => chainTime(i.triggered_at) },
            { label: "Updated", class: "wide", cell: (i) => wallTime(i.updated_ms) },
          ],
          rows: page.items,
          empty: state ? `No intent is ${state}.` : "No rule has fired yet.",
        }),
        pager.controls(page.items.length),
      ]);
    } catch (err) {
      ctx.failed(err);
      update(results, { error: err.message }, () => errorBox(err));
    }
  }

  load();
  return { refresh: load, status: showCounts };
}
