// #/sessions?owner=&status=&policy=&limit= : the sessions table, filtered, paged.

import { h } from "./dom.js";
import { get } from "./api.js";
import { chainTime } from "./format.js";
import { amount, addr, badge, errorBox, sessionLink, table, update, Pager } from "./widgets.js";

const STATUSES = ["", "active", "revoked", "closed"];
const SIZES = ["25", "50", "100"];

function filterForm(ctx, params) {
  const owner = h("input", { id: "f-owner", name: "owner", value: params.owner || "", placeholder: "0x…", spellcheck: "false", autocomplete: "off" });
  const status = h("select", { id: "f-status", name: "status" },
    STATUSES.map((s) => h("option", { value: s, selected: (params.status || "") === s }, s || "any")));
  const policy = h("input", { id: "f-policy", name: "policy", value: params.policy || "", autocomplete: "off" });
  const sizes = SIZES.includes(params.limit || "25") ? SIZES : [params.limit, ...SIZES];
  const limit = h("select", { id: "f-limit", name: "limit" },
    sizes.map((s) => h("option", { value: s, selected: (params.limit || "25") === s }, s)));
  const form = h("form", { class: "filters", role: "search", "aria-label": "Filter sessions" },
    h("div", { class: "field" }, h("label", { for: "f-owner" }, "Owner"), owner),
    h("div", { class: "field" }, h("label", { for: "f-status" }, "Status"), status),
    h("div", { class: "field" }, h("label", { for: "f-policy" }, "Policy"), policy),
    h("div", { class: "field" }, h("label", { for: "f-limit" }, "Per page"), limit),
    h("div", { class: "field buttons" },
      h("button", { type: "submit" }, "Apply"),
      h("button", { type: "button", class: "quiet", onclick: () => ctx.navigate("#/sessions") }, "Clear")));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v !== "" && !(k === "limit" && v === "25")) q.set(k, v.trim());
    const qs = q.toString();
    ctx.navigate(qs ? `#/sessions?${qs}` : "#/sessions");
  });
  return form;
}

function columns(ctx) {
  return [
    { label: "Wallet", cell: (s) => sessionLink(s.wallet) },
    { label: "Owner", class: "wide", cell: (s) => addr(s.owner) },
    { label: "Policy", cell: (s) => h("span", { class: "policy" }, s.policy === "" ? "—" : s.policy) },
    { label: "Status", cell: (s) => [badge(s.status), s.close_reason ? [" ", badge(s.close_reason, "reason")] : null] },
    { label: "Balance", class: "num", cell: (s) => amount(s.balance, ctx.decimals(s.token)) },
    { label: "Budget left", class: "num wide", cell: (s) => amount(s.remaining_budget, ctx.decimals(s.token)) },
    { label: "Created", class: "wide", cell: (s) => chainTime(s.created_at) },
  ];
}

export function mount(root, ctx, params) {
  const filters = { owner: params.owner, status: params.status, policy: params.policy };
  const limit = params.limit || "25";
  const results = h("div", { class: "results", "aria-live": "off" });
  const pager = new Pager(() => load());
  root.append(
    h("h1", {}, "Sessions"),
    filterForm(ctx, params),
    results,
  );

  async function load() {
    try {
      const page = await get("/sessions", { ...filters, limit, cursor: pager.cursor });
      pager.next = page.next_cursor;
      update(results, { page, stack: pager.stack.length, decimals: ctx.status && ctx.status.token_decimals }, () => [
        table({
          caption: `Sessions${filters.owner || filters.status || filters.policy ? " (filtered)" : ""}`,
          columns: columns(ctx),
          rows: page.items,
          empty: "No session matches.",
        }),
        pager.controls(page.items.length),
      ]);
    } catch (err) {
      ctx.failed(err);
      update(results, { error: err.message }, () => errorBox(err));
    }
  }

  load();
  return { refresh: load };
}
