// Live updates without reloading. The daemon's event stream (GET /stream, server-sent
// events) says when something changed; EventSource cannot send an Authorization header,
// so the stream is read with fetch() and parsed here. A daemon without /stream (404) is
// followed by polling /status instead: a change of block, sessions or intents counts
// triggers the same refresh. /status is read on a timer either way: it is the health
// panel's source.

import { get, headers, ApiError } from "./api.js";

const POLL_MS = 2000;
const POLL_STREAMING_MS = 5000;
// The server sends a keepalive comment after 15 s of silence: a stream quiet for longer
// than this is dead (a frozen daemon, a dropped connection nobody closed).
const STREAM_SILENCE_MS = 45000;

function signature(status) {
  return JSON.stringify([status.indexed_block, status.sessions, status.intents]);
}

export class Live {
  constructor({ onStatus, onChange, onMode, onAuth }) {
    Object.assign(this, { onStatus, onChange, onMode, onAuth });
    this.mode = "connecting";
    this.last = null;
    this.lastEventId = null;
    this.abort = null;
    this.timer = null;
    this.stopped = false;
  }

  start() {
    this.stopped = false;
    this.poll();
    this.stream();
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.timer);
    if (this.abort) this.abort.abort();
  }

  setMode(mode, detail) {
    if (mode === this.mode && !detail) return;
    this.mode = mode;
    this.onMode(mode, detail);
  }

  async poll() {
    if (this.stopped) return;
    try {
      const status = await get("/status");
      this.onStatus(status);
      const sig = signature(status);
      // The stream tells of what the daemon logs as events; a deposit or a new block is
      // seen here (every 5 s while streaming, every 2 s otherwise).
      if (this.last !== null && sig !== this.last) this.onChange({ source: "poll" });
      this.last = sig;
      if (this.mode === "offline" || this.mode === "connecting") this.setMode(this.streaming ? "stream" : "polling");
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return this.onAuth();
      this.setMode("offline", err.message);
    }
    this.timer = setTimeout(() => this.poll(), this.mode === "stream" ? POLL_STREAMING_MS : POLL_MS);
  }

  async stream(backoff = 1000) {
    if (this.stopped) return;
    this.abort = new AbortController();
    let response;
    try {
      const h = { ...headers(), Accept: "text/event-stream" };
      if (this.lastEventId) h["Last-Event-ID"] = this.lastEventId;
      response = await fetch("/stream", { headers: h, cache: "no-store", signal: this.abort.signal });
    } catch {
      return this.retry(backoff);
    }
    if (response.status === 404) {
      this.streaming = false;
      this.setMode("polling");
      return; // this daemon has no event stream: polling it is
    }
    if (response.status === 401) return this.onAuth();
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.startsWith("text/event-stream") || !response.body) {
      return this.retry(backoff);
    }
    this.streaming = true;
    this.setMode("stream");
    this.onChange({ source: "stream-open" }); // anything missed while disconnected
    let heard = Date.now();
    this.onBytes = () => { heard = Date.now(); };
    const watchdog = setInterval(() => {
      if (Date.now() - heard > STREAM_SILENCE_MS) this.abort.abort();
    }, 5000);
    try {
      await this.read(response.body);
    } catch {
      // connection lost or given up on: reconnect below
    } finally {
      clearInterval(watchdog);
    }
    this.streaming = false;
    if (this.stopped) return;
    this.setMode("polling", "stream lost, reconnecting");
    clearTimeout(this.timer);
    this.poll(); // is the daemon still there? Offline at once if not
    return this.retry(1000);
  }

  retry(backoff) {
    if (this.stopped) return;
    setTimeout(() => this.stream(Math.min(backoff * 2, 15000)), backoff);
  }

  // The text/event-stream format: fields per line, an event per blank line.
  async read(body) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let event = { type: "message", data: [] };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      this.onBytes();
      buffer += value;
      const lines = buffer.split(/\r\n|\r|\n/);
      buffer = lines.pop();
      for (const line of lines) {
        if (line === "") {
          if (event.data.length) this.dispatch(event);
          event = { type: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue; // a comment: keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event.type = text;
        else if (field === "data") event.data.push(text);
        else if (field === "id") this.lastEventId = text;
      }
    }
  }

  dispatch(event) {
    let data = null;
    try {
      data = JSON.parse(event.data.join("\n"));
    } catch {
      data = event.data.join("\n");
    }
    this.onChange({ source: "stream", type: event.type, data });
  }
}
