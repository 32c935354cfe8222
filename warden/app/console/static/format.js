// Exact amounts: uint256 values arrive as decimal strings and are formatted with BigInt;
// a Number would round anything beyond 2^53.

export function units(raw, decimals) {
  if (raw === null || raw === undefined) return "—";
  const value = BigInt(raw);
  const scale = 10n ** BigInt(decimals);
  const whole = value / scale;
  const frac = decimals > 0 ? (value % scale).toString().padStart(decimals, "0").replace(/0+$/, "") : "";
  const grouped = whole.toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  return frac ? `${grouped}.${frac}` : grouped;
}

export function ether(wei) {
  return wei === null || wei === undefined ? "—" : `${units(wei, 18)} ETH`;
}

export function integer(n) {
  return n === null || n === undefined ? "—" : BigInt(n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function short(address) {
  return address && address.length > 14 ? `${address.slice(0, 8)}…${address.slice(-6)}` : address || "—";
}

export function chainTime(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  return new Date(Number(seconds) * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

export function wallTime(ms) {
  if (ms === null || ms === undefined) return "—";
  return new Date(Number(ms)).toISOString().replace("T", " ").replace(/Z$/, " UTC");
}

export function duration(ms) {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 120000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.round(ms / 60000)} min`;
}

// A share of two exact integers, as a percentage with one decimal (display only).
export function share(part, whole) {
  const p = BigInt(part), w = BigInt(whole);
  if (w === 0n) return 0;
  return Number((p * 1000n) / w) / 10;
}

export function words(s) {
  return String(s ?? "").replaceAll("_", " ");
}
