// #/ : health at a glance, sessions and intents counts, and the activity charts.

import { h } from "./dom.js";
import { get } from "./api.js";
import { ether, integer, wallTime, words, duration } from "./format.js";
import { addr, badge, errorBox, sessionLink, update } from "./widgets.js";
import { closesChart, latencyChart } from "./chart.js";

function tile(label, value, tone) {
  return h("div", { class: `tile${tone ? ` tone-${tone}` : ""}` }, h("dt", {}, label), h("dd", {}, value));
}

function health(s) {
  const p = s.protection;
  const lead = s.leadership;
  const tiles = [
    tile("Chain head", integer(s.chain_head)),
    tile("Indexed block", integer(s.indexed_block)),
    tile("Safe block", integer(s.safe_block)),
    tile("Lag", s.lag_blocks === null ? "—" : `${integer(s.lag_blocks)} blocks`, s.lag_blocks > 10 ? "warn" : null),
    tile("Caught up", s.caught_up ? "yes" : "no", s.caught_up ? "ok" : "warn"),
    tile("Relayer", s.relayer.address ? addr(s.relayer.address) : "none (dry run)"),
    tile("Relayer balance", ether(s.relayer.balance)),
    tile("Rules version", h("span", { class: "mono" }, s.rules_version || "—")),
  ];
  if (lead && lead.shared) {
    tiles.push(tile("Role", `${lead.role}${lead.epoch !== null ? ` (epoch ${lead.epoch})` : ""}`, lead.role === "leader" ? "ok" : null));
    tiles.push(tile("Leader", lead.leader || "nobody yet"));
  }
  if (p) {
    tiles.push(tile("Circuit breaker", p.circuit_breaker_open ? "open: sending stopped" : "closed", p.circuit_breaker_open ? "bad" : "ok"));
    tiles.push(tile("Gas in last hour", `${integer(p.gas_in_window)} of ${integer(p.gas_budget_per_hour)}`));
    if (p.sending_paused) tiles.push(tile("Sending paused", p.sending_paused, "bad"));
  }
  const alerts = p && p.alerts.length
    ? h("ul", { class: "alerts" }, [...p.alerts].reverse().map((a) =>
      h("li", {}, badge(a.kind, "alert"), " ", a.message, h("span", { class: "muted" }, ` · ${wallTime(a.at_ms)}`))))
    : h("p", { class: "muted" }, p ? "No alerts." : "No relayer protection figures (dry run, or the executor has not stepped yet).");
  return [h("dl", { class: "tiles" }, tiles), h("h3", {}, "Alerts"), alerts];
}

function counts(title, byKey, link) {
  return h("div", {}, h("h3", {}, title), h("ul", { class: "chips" }, Object.entries(byKey).map(([k, n]) =>
    h("li", {}, h("a", { class: "chip", href: link(k) }, `${words(k)} `, h("span", { class: "count" }, String(n)))))));
}

// One line per stream event: when, its kind and severity, the session, what it says.
function feedItem(e) {
  const data = e.data && typeof e.data === "object" ? e.data : {};
  const said = ["reason", "rule", "message", "detail", "state"]
    .filter((k) => data[k] !== undefined && data[k] !== null)
    .map((k) => `${k}: ${data[k]}`).join(" · ");
  return h("li", { class: `feed-item severity-${String(e.severity || "info").replace(/[^a-z]/g, "")}` },
    h("span", { class: "muted" }, wallTime(e.at_ms).slice(11)), " ",
    h("span", { class: "badge kind" }, String(e.kind || "event")), " ",
    e.session && e.session.wallet ? sessionLink(e.session.wallet) : null,
    said ? h("span", { class: "said" }, ` ${said}`) : null);
}

function feed(ctx) {
  if (ctx.mode !== "stream") {
    return h("p", { class: "muted" }, ctx.mode === "polling"
      ? "This daemon has no event stream (/stream): the views update by polling /status, and there is no event feed."
      : "Waiting for the event stream…");
  }
  if (!ctx.feed.length) return h("p", { class: "muted" }, "No event since this page opened; new ones appear here as they happen.");
  return h("ol", { class: "feed plain" }, ctx.feed.map(feedItem));
}

export function mount(root, ctx) {
  const healthBox = h("div", {});
  const countsBox = h("div", { class: "counts" });
  const closesBox = h("div", {});
  const latencyBox = h("div", {});
  const statsBox = h("div", {});
  const feedBox = h("div", { "aria-live": "off" });
  root.append(
    h("h1", {}, "Overview"),
    h("section", { class: "card", "aria-labelledby": "h-title" }, h("h2", { id: "h-title" }, "Health"), healthBox),
    h("section", { class: "card", "aria-labelledby": "c-title" }, h("h2", { id: "c-title" }, "Sessions and intents"), countsBox, statsBox),
    h("div", { class: "charts" },
      h("section", { class: "card", "aria-labelledby": "ch1" }, h("h2", { id: "ch1" }, "Closes by reason"), closesBox),
      h("section", { class: "card", "aria-labelledby": "ch2" }, h("h2", { id: "ch2" }, "Reaction latency"), latencyBox)),
    h("section", { class: "card", "aria-labelledby": "ev-title" }, h("h2", { id: "ev-title" }, "Latest events"), feedBox));

  function showFeed() {
    update(feedBox, { mode: ctx.mode, feed: ctx.feed }, () => feed(ctx));
  }

  function showStatus(s) {
    if (!s) return;
    update(healthBox, s, health);
    update(countsBox, { a: s.sessions, b: s.intents }, () => [
      counts("Sessions by status", s.sessions, (k) => `#/sessions?status=${encodeURIComponent(k)}`),
      counts("Intents by state", s.intents, (k) => `#/intents?state=${encodeURIComponent(k)}`),
    ]);
  }

  async function load() {
    showStatus(ctx.status);
    showFeed();
    try {
      const [activity, stats] = await Promise.all([get("/activity", { limit: 500 }), get("/stats")]);
      update(closesBox, activity.closes, closesChart);
      update(latencyBox, activity.reactions, latencyChart);
      update(statsBox, stats, (st) => h("dl", { class: "tiles" },
        tile("Active sessions", integer(st.active_sessions)),
        tile("Stop-loss hit rate", st.stop_loss.rate === null ? "—" : `${(st.stop_loss.rate * 100).toFixed(1)} %`),
        tile("Take-profit hit rate", st.take_profit.rate === null ? "—" : `${(st.take_profit.rate * 100).toFixed(1)} %`),
        tile("Average duration", st.average_duration_seconds === null ? "—" : duration(st.average_duration_seconds * 1000))));
    } catch (err) {
      ctx.failed(err);
      update(closesBox, { error: err.message }, () => errorBox(err));
    }
  }

  load();
  return { refresh: load, status: showStatus, mode: showFeed };
}
