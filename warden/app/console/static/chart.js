// Two small inline-SVG charts for the overview: closes by reason over time (stacked bars
// per time bucket) and reaction latency over time (intent stored → first send).

import { h, svg } from "./dom.js";
import { words } from "./format.js";

const W = 480, H = 180, PAD = { l: 40, r: 10, t: 10, b: 28 };
const COLORS = {
  stop_loss: "#c62828", take_profit: "#2e7d32", expired: "#b26a00", idle: "#616161",
  swept: "#1565c0", owner: "#6a1b9a", revoked: "#00838f",
};
const WIDTHS = [5e3, 15e3, 60e3, 300e3, 900e3, 3600e3, 6 * 3600e3, 86400e3, 7 * 86400e3];
const SPARE = ["#ad1457", "#4e342e", "#283593", "#558b2f"];

export function colorOf(reason, order) {
  return COLORS[reason] || SPARE[order.indexOf(reason) % SPARE.length];
}

function hhmm(ms, seconds = false) {
  return new Date(ms).toISOString().slice(11, seconds ? 19 : 16);
}

function frame(title, desc, yMax, yLabel, x0, x1) {
  const id = `c${Math.random().toString(36).slice(2, 8)}`;
  const s = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": `${id}-t ${id}-d`, class: "chart" },
    svg("title", { id: `${id}-t` }, title),
    svg("desc", { id: `${id}-d` }, desc));
  const y = (v) => PAD.t + (H - PAD.t - PAD.b) * (1 - v / yMax);
  s.append(
    svg("line", { x1: PAD.l, y1: y(0), x2: W - PAD.r, y2: y(0), class: "axis" }),
    svg("line", { x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: y(0), class: "axis" }),
    svg("text", { x: PAD.l - 4, y: PAD.t + 8, class: "tick", "text-anchor": "end" }, yLabel(yMax)),
    svg("text", { x: PAD.l - 4, y: y(0), class: "tick", "text-anchor": "end" }, "0"),
    svg("text", { x: PAD.l, y: H - 8, class: "tick" }, `${hhmm(x0, x1 - x0 < 3600e3)} UTC`),
    svg("text", { x: W - PAD.r, y: H - 8, class: "tick", "text-anchor": "end" }, `${hhmm(x1, x1 - x0 < 3600e3)} UTC`));
  return { s, y };
}

function niceMax(v) {
  if (v <= 0) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

export function closesChart(closes) {
  if (!closes.length) return h("p", { class: "muted" }, "No session has closed yet.");
  const reasons = [...new Set(closes.map((c) => c.reason))].sort();
  // Buckets of a round width (5 s … 1 day), the smallest that fits the whole span in at
  // most 24 of them, ending at the latest close.
  const first = closes[0].closed_at * 1000, last = closes[closes.length - 1].closed_at * 1000;
  const width = WIDTHS.find((w) => (last - first) / w < 24) || WIDTHS[WIDTHS.length - 1];
  const t1 = (Math.floor(last / width) + 1) * width;
  const n = Math.min(24, Math.max(6, Math.ceil((t1 - first) / width)));
  const t0 = t1 - n * width;
  const buckets = Array.from({ length: n }, () => ({}));
  for (const c of closes) {
    const i = Math.floor((c.closed_at * 1000 - t0) / width);
    if (i < 0) continue; // older than the window shown
    buckets[i][c.reason] = (buckets[i][c.reason] || 0) + 1;
  }
  const top = niceMax(Math.max(...buckets.map((b) => Object.values(b).reduce((a, x) => a + x, 0))));
  const totals = reasons.map((r) => [r, closes.filter((c) => c.reason === r).length]);
  const per = width < 60e3 ? `${width / 1e3} s` : width < 3600e3 ? `${width / 60e3} min` : width < 86400e3 ? `${width / 3600e3} h` : `${width / 86400e3} d`;
  const desc = `${closes.length} closes, one bar per ${per}, from ${hhmm(t0)} to ${hhmm(t1)} UTC: ${totals.map(([r, k]) => `${words(r)} ${k}`).join(", ")}`;
  const { s, y } = frame("Closes by reason over time", desc, top, String, t0, t1);
  const bw = (W - PAD.l - PAD.r) / n;
  buckets.forEach((b, i) => {
    let base = 0;
    for (const r of reasons) {
      const k = b[r] || 0;
      if (!k) continue;
      s.append(svg("rect", { x: PAD.l + i * bw + 1, y: y(base + k), width: Math.max(1, bw - 2), height: y(base) - y(base + k), fill: colorOf(r, reasons) },
        svg("title", {}, `${words(r)}: ${k}`)));
      base += k;
    }
  });
  const legend = h("ul", { class: "legend" }, totals.map(([r, k]) =>
    h("li", {}, svg("svg", { viewBox: "0 0 10 10", width: "10", height: "10", "aria-hidden": "true" }, svg("rect", { width: "10", height: "10", fill: colorOf(r, reasons) })),
      ` ${words(r)} `, h("span", { class: "count" }, String(k)))));
  return h("figure", { class: "chart-box" }, s, h("figcaption", {}, legend, `One bar per ${per}.`));
}

export function latencyChart(reactions) {
  if (!reactions.length) return h("p", { class: "muted" }, "No transaction sent yet.");
  const points = reactions.map((r) => [r.created_ms, r.latency_ms / 1000]);
  const t0 = points[0][0], t1 = Math.max(points[points.length - 1][0], t0 + 1);
  const worst = Math.max(...points.map((p) => p[1]));
  const sorted = points.map((p) => p[1]).sort((a, b) => a - b);
  const median = sorted[Math.floor(sorted.length / 2)];
  const top = niceMax(worst);
  const desc = `${points.length} reactions, median ${median.toFixed(2)} s, worst ${worst.toFixed(2)} s`;
  const { s, y } = frame("Reaction latency over time (seconds)", desc, top, (v) => `${v} s`, t0, t1);
  const x = (t) => PAD.l + (W - PAD.l - PAD.r) * ((t - t0) / (t1 - t0));
  s.append(svg("polyline", { points: points.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(" "), class: "line" }));
  for (const [t, v] of points) {
    s.append(svg("circle", { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: "2.5", class: "dot" }, svg("title", {}, `${v.toFixed(2)} s at ${hhmm(t)} UTC`)));
  }
  return h("figure", { class: "chart-box" }, s, h("figcaption", {}, desc));
}
