// Pieces several views share: badges, links to a session, amounts, tables, paging.

import { h, replace } from "./dom.js";
import { units, short, words } from "./format.js";
import { ApiError } from "./api.js";

export function badge(value, kind = "state") {
  return h("span", { class: `badge ${kind}-${String(value).replace(/[^a-z_]/g, "")}` }, words(value));
}

export function sessionLink(wallet, { full = false } = {}) {
  return h("a", { href: `#/session/${encodeURIComponent(wallet)}`, class: "mono", title: wallet }, full ? wallet : short(wallet));
}

export function addr(address) {
  return h("span", { class: "mono", title: address }, short(address));
}

// An exact token amount: formatted with the token's decimals when the daemon knows them,
// the raw integer in the title (and as the text when they are unknown).
export function amount(raw, decimals) {
  if (raw === null || raw === undefined) return h("span", {}, "—");
  if (decimals === null || decimals === undefined) {
    return h("span", { class: "num", title: `${raw} base units (token decimals not known yet)` }, `${units(raw, 0)} units`);
  }
  return h("span", { class: "num", title: `${raw} base units` }, units(raw, decimals));
}

export function table({ caption, columns, rows, empty }) {
  const head = h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.class }, c.label)));
  const body = rows.length
    ? rows.map((row) => h("tr", {}, columns.map((c) => h("td", { class: c.class, "data-label": c.label }, h("span", { class: "cell" }, c.cell(row))))))
    : [h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, empty || "Nothing here."))];
  return h("div", { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h("table", {}, h("caption", {}, caption), h("thead", {}, head), h("tbody", {}, body)));
}

export function errorBox(err) {
  const parameter = err instanceof ApiError && err.body && err.body.error ? err.body.error.parameter : null;
  const text = parameter ? `${err.message} (parameter: ${parameter})` : err.message;
  return h("p", { class: "error", role: "alert" }, text);
}

// Keyset paging: the API hands a cursor for the next page; the cursors of the pages
// before are kept here so "Previous" can go back.
export class Pager {
  constructor(onMove) {
    this.stack = []; // cursors of the pages before the current one (null: the first)
    this.cursor = null;
    this.next = null;
    this.onMove = onMove;
  }

  reset() {
    this.stack = [];
    this.cursor = null;
    this.next = null;
  }

  controls(count) {
    const page = this.stack.length + 1;
    const prev = h("button", { type: "button", class: "quiet", disabled: this.stack.length === 0, "data-action": "prev" }, "← Previous page");
    const next = h("button", { type: "button", class: "quiet", disabled: this.next === null, "data-action": "next" }, "Next page →");
    prev.addEventListener("click", () => {
      this.cursor = this.stack.pop() ?? null;
      this.onMove("prev");
    });
    next.addEventListener("click", () => {
      this.stack.push(this.cursor);
      this.cursor = this.next;
      this.onMove("next");
    });
    return h("nav", { class: "pager", "aria-label": "Pages" }, prev,
      h("span", { class: "page-no", "aria-live": "polite" }, `Page ${page} · ${count} shown`), next);
  }
}

// Replace `node`'s content only when the data changed: a refresh every few seconds must
// not reset focus, selection or scroll for nothing.
const shown = new WeakMap();

export function update(node, data, build) {
  const key = JSON.stringify(data);
  if (shown.get(node) === key) return false;
  shown.set(node, key);
  const focusedAction = document.activeElement && node.contains(document.activeElement)
    ? document.activeElement.dataset.action : null;
  replace(node, build(data));
  if (focusedAction) {
    const again = node.querySelector(`[data-action="${focusedAction}"]:not([disabled])`);
    if (again) again.focus();
  }
  return true;
}
