// The console's shell: sign-in, the live connection, and a hash router over the views
// (#/, #/sessions?…, #/session/0x…, #/intents?…). Nothing secret goes in the hash.

import { get, token, ApiError } from "./api.js";
import { h, replace } from "./dom.js";
import { Live } from "./live.js";
import * as overview from "./overview.js";
import * as sessions from "./sessions.js";
import * as session from "./session.js";
import * as intents from "./intents.js";

const main = document.getElementById("main");
const loginSection = document.getElementById("login");
const loginForm = document.getElementById("login-form");
const loginError = document.getElementById("login-error");
const tokenInput = document.getElementById("token");
const logout = document.getElementById("logout");
const liveLabel = document.getElementById("live");

const FEED_SIZE = 30;

const ctx = {
  status: null,
  mode: "connecting",
  feed: [], // the event stream's latest events, newest first (since the page opened)
  decimals(tokenAddress) {
    const known = this.status && this.status.token_decimals ? this.status.token_decimals : {};
    return Object.hasOwn(known, tokenAddress) ? known[tokenAddress] : null;
  },
  navigate(hash) {
    if (location.hash === hash) render(true); else location.hash = hash;
  },
  failed(err) {
    if (err instanceof ApiError && err.status === 401) signOut("The daemon refused the token; sign in again.");
  },
};

let current = null;
let live = null;
let refreshing = null;
let again = false;

function parseHash() {
  const hash = location.hash.startsWith("#/") ? location.hash.slice(1) : "/";
  const [path, qs] = hash.split("?");
  const params = Object.fromEntries(new URLSearchParams(qs || ""));
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "session" && parts[1]) {
    let wallet = parts[1];
    try {
      wallet = decodeURIComponent(wallet);
    } catch {
      // a malformed escape: the API names the bad wallet
    }
    return { view: session, name: "sessions", params: { wallet } };
  }
  if (parts[0] === "sessions") return { view: sessions, name: "sessions", params };
  if (parts[0] === "intents") return { view: intents, name: "intents", params };
  return { view: overview, name: "overview", params };
}

// `moved`: the operator navigated (focus goes to the new view's heading, so a screen
// reader announces it and Tab continues from there).
function render(moved = false) {
  const { view, name, params } = parseHash();
  for (const a of document.querySelectorAll("nav a")) {
    if (a.dataset.view === name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  const root = h("div", { class: "view" });
  replace(main, root);
  current = view.mount(root, ctx, params);
  const heading = root.querySelector("h1");
  if (heading && moved) {
    heading.setAttribute("tabindex", "-1");
    heading.focus({ preventScroll: true });
  }
}

// Refreshes never overlap, and start at most every REFRESH_GAP_MS: a burst of events (a
// storm of closes) costs one re-read per gap, not one per event. A change during a
// refresh runs one more afterwards.
const REFRESH_GAP_MS = 500;
let lastRefresh = 0;
let scheduled = null;

async function refresh() {
  if (!current || !current.refresh) return;
  if (refreshing) {
    again = true;
    return;
  }
  const wait = lastRefresh + REFRESH_GAP_MS - Date.now();
  if (wait > 0) {
    if (!scheduled) scheduled = setTimeout(() => { scheduled = null; refresh(); }, wait);
    return;
  }
  lastRefresh = Date.now();
  const view = current;
  refreshing = view.refresh().catch((err) => ctx.failed(err));
  await refreshing;
  refreshing = null;
  if (again) {
    again = false;
    refresh();
  }
}

function showMode(mode, detail) {
  ctx.mode = mode;
  if (current && current.mode) current.mode(mode);
  const text = {
    stream: "Live: event stream",
    polling: "Live: polling every 2 s",
    offline: `Offline: ${detail || "the daemon does not answer"}`,
    connecting: "Connecting…",
  }[mode];
  liveLabel.textContent = detail && mode !== "offline" ? `${text} (${detail})` : text;
  liveLabel.dataset.mode = mode;
}

function startLive() {
  if (live) live.stop();
  live = new Live({
    onStatus: (status) => {
      ctx.status = status;
      if (current && current.status) current.status(status);
    },
    onChange: (change) => {
      if (change.source === "stream" && change.data && typeof change.data === "object") {
        const key = change.data.cursor || change.data.id;
        if (!ctx.feed.some((e) => (e.cursor || e.id) === key)) {
          ctx.feed = [change.data, ...ctx.feed].slice(0, FEED_SIZE);
        }
      }
      refresh();
    },
    onMode: showMode,
    onAuth: () => signOut("The daemon refused the token; sign in again."),
  });
  live.start();
}

function signOut(message) {
  if (live) live.stop();
  live = null;
  token.clear();
  current = null;
  main.replaceChildren();
  main.hidden = true;
  loginSection.hidden = false;
  logout.hidden = true;
  loginError.textContent = message || "";
  tokenInput.value = "";
  tokenInput.focus();
}

function signedIn(status, needsToken) {
  ctx.status = status;
  loginSection.hidden = true;
  main.hidden = false;
  logout.hidden = !needsToken;
  startLive();
  render();
}

loginForm.addEventListener("submit", async (e) => {
  e.preventDefault();
  const value = tokenInput.value.trim();
  if (!value) {
    loginError.textContent = "Type the API token (api.token in the daemon's configuration).";
    return;
  }
  if (!/^[\x20-\x7e]+$/.test(value)) {
    // fetch() would refuse such a header before anything is sent
    loginError.textContent = "The token has characters an HTTP header cannot carry (only printable ASCII); check what was pasted.";
    return;
  }
  loginError.textContent = "Checking…";
  try {
    const status = await get("/status", null, { token: value });
    token.set(value);
    loginError.textContent = "";
    tokenInput.value = "";
    signedIn(status, true);
  } catch (err) {
    loginError.textContent = err instanceof ApiError && err.status === 401
      ? "The daemon refused this token."
      : `Cannot reach the daemon: ${err.message}`;
    tokenInput.select();
  }
});

logout.addEventListener("click", () => signOut("Signed out."));
window.addEventListener("hashchange", () => {
  if (location.hash === "#main") return; // the skip link: the browser moves focus itself
  if (!loginSection.hidden) return; // signed out: nothing to show until signed in
  render(true);
});

async function boot() {
  try {
    const status = await get("/status");
    signedIn(status, Boolean(token.get()));
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      signOut(token.get() ? "The daemon refused the stored token; sign in again." : "");
    } else {
      replace(main, h("p", { class: "error", role: "alert" }, `Cannot reach the daemon: ${err.message}`));
      setTimeout(boot, 3000);
    }
  }
}

boot();
