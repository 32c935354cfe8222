// The JSON API, read with the operator's token from sessionStorage (this tab only; it is
// sent as an Authorization header and never placed in a URL).

const KEY = "warden.token";

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && body.error ? body.error.message : `HTTP ${status}`;
    super(detail);
    this.status = status;
    this.body = body;
  }
}

export const token = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export function headers(given) {
  const value = given === undefined ? token.get() : given;
  return value ? { Authorization: `Bearer ${value}` } : {};
}

export function url(path, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined && v !== "") query.set(k, v);
  }
  const qs = query.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function get(path, params, options = {}) {
  const response = await fetch(url(path, params), {
    headers: headers(options.token),
    cache: "no-store",
    signal: options.signal,
  });
  let body = null;
  if ((response.headers.get("Content-Type") || "").startsWith("application/json")) {
    body = await response.json();
  }
  if (!response.ok && !(options.accept || []).includes(response.status)) {
    throw new ApiError(response.status, body);
  }
  return body;
}
