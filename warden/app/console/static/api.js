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

// A daemon that accepts the connection and never answers (stopped, overloaded) must not
// leave the console waiting forever: every read gives up after this long.
const TIMEOUT_MS = 15000;

export async function get(path, params, options = {}) {
  const limit = AbortSignal.timeout(options.timeout || TIMEOUT_MS);
  let response;
  try {
    response = await fetch(url(path, params), {
      headers: headers(options.token),
      cache: "no-store",
      signal: options.signal ? AbortSignal.any([options.signal, limit]) : limit,
    });
  } catch (err) {
    if (err && err.name === "TimeoutError") throw new Error(`no answer to ${path} within ${TIMEOUT_MS / 1000} s`);
    throw new Error(`the daemon cannot be reached (${path})`);
  }
  let body = null;
  if ((response.headers.get("Content-Type") || "").startsWith("application/json")) {
    body = await response.json();
  }
  if (!response.ok && !(options.accept || []).includes(response.status)) {
    throw new ApiError(response.status, body);
  }
  return body;
}
