// The page's one connection: a single EventSource on /events carries every
// panel's stream. A browser keeps at most six HTTP/1.1 connections per host;
// one EventSource per panel left room for a single tab more.
//
// Every event carries `id: <token>`, one resume position for all the
// followed streams. The page reopens with ?after=<token> itself (a new
// EventSource sends no Last-Event-ID): when the follow set changes, and after
// a failure, with capped exponential backoff and jitter rather than the
// browser's fixed retry.
"use strict";

import { dashboard, noteItem, noteState, now } from "./hooks.js";

const FIRST_RETRY_MS = 1000;
const MAX_RETRY_MS = 20_000;
const HEALTHY_MS = 10_000; // up this long, a connection resets the backoff
const QUIET_CONNECT_MS = 15_000; // no `hello` by then: say so, the browser may be out of connections
const PROBE_TIMEOUT_MS = 5000;

/** The delay before retry number `failures` (1, 2, ...): doubling, capped, jittered. */
export function backoffMs(failures) {
  const ceiling = Math.min(MAX_RETRY_MS, FIRST_RETRY_MS * 2 ** (failures - 1));
  // At least half the ceiling, the rest at random: tabs that failed together spread out.
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** What a stream's badge says, by the state the server reported for it. */
function streamText(state, info = {}) {
  switch (state) {
    case "waiting": return "waiting for a run";
    case "live": return "live";
    case "resumed": return `resumed after ${info.resumed_after}`;
    case "reconnecting": return "reconnecting to Temporal";
    case "closing": return "the server is stopping";
    case "failed": return `failed: ${info.detail ?? "see the server's log"}`;
    case "ended": return info.status ? `ended: ${info.status.toLowerCase()}` : "ended";
    case "refused": return `refused: ${info.why}`;
    default: return state;
  }
}

/** One followed workflow id: the panel's handlers and badge, and what the server said of it. */
class Followed {
  constructor(workflowId, { key, badge, handlers }) {
    Object.assign(this, { workflowId, key, badge, handlers });
    this.chain = null;
    this.runId = null;
    this.state = "connecting";
    this.text = "connecting";
  }
}

export class Connection {
  #streams = new Map(); // workflow id -> Followed
  #token = null; // the last event's id: where every stream resumes
  #source = null;
  #greeted = false; // whether the current EventSource got its `hello`
  #failures = 0;
  #timers = {};
  #state = "connecting"; // connecting | live | reconnecting | refused
  #text = "connecting";
  #reopening = false;
  #resuming = false; // whether this connection replaces one that failed (not a follow change)

  /** `badge` shows the connection itself; `detail` says what it carries. */
  constructor({ badge, detail }) {
    this.badge = badge;
    this.detail = detail;
  }

  /** Follow `workflowId` for a panel: {key, badge, handlers: {reset, item, run, truncated, end}}. */
  follow(workflowId, panel) {
    if (this.#streams.has(workflowId)) return;
    this.#streams.set(workflowId, new Followed(workflowId, panel));
    noteState(panel.key, "connecting", "connecting");
    this.#changed();
  }

  /** Stop following `workflowId` (its panel is gone). */
  unfollow(workflowId) {
    if (this.#streams.delete(workflowId)) this.#changed();
  }

  /** Whether the server said `workflowId`'s chain ended (and no new one began since). */
  ended(workflowId) {
    return this.#streams.get(workflowId)?.state === "ended";
  }

  // Several changes in one task (an order added, two ended ones dropped) reopen once.
  #changed() {
    if (this.#reopening) return;
    this.#reopening = true;
    queueMicrotask(() => {
      this.#reopening = false;
      this.#open();
    });
  }

  #url() {
    const query = new URLSearchParams();
    for (const id of this.#streams.keys()) query.append("follow", id);
    if (this.#token) query.set("after", this.#token);
    return `/events?${query}`;
  }

  #open() {
    this.#stop();
    if (this.#streams.size === 0) return;
    const url = this.#url();
    const source = new EventSource(url);
    this.#source = source;
    this.#greeted = false;
    this.#resuming = this.#failures > 0;
    this.#setConnection("connecting", this.#resuming ? "resuming" : "connecting");
    this.#timers.quiet = setTimeout(() => this.#setConnection("connecting", "still connecting",
      `no answer for ${QUIET_CONNECT_MS / 1000} s: the browser may have no connection left for this host`),
    QUIET_CONNECT_MS);
    const on = (type, handle) => source.addEventListener(type, (event) => {
      if (source !== this.#source) return; // a late event of a connection we closed
      handle(JSON.parse(event.data));
      // Only once the event is shown does the page move past it.
      if (event.lastEventId) this.#token = event.lastEventId;
    });
    on("hello", (hello) => this.#hello(hello));
    on("chain", (chain) => this.#chain(chain));
    on("item", (item) => this.#item(item));
    on("state", (state) => this.#upstream(state));
    on("truncated", (gap) => this.#truncated(gap));
    on("end", (end) => this.#end(end));
    on("dropped", (dropped) => this.#lost(`the server let this page go (${dropped.why})`));
    on("refused", (refused) => this.#refused(refused));
    source.onerror = () => {
      if (source !== this.#source) return;
      // Close it: the browser's own retry is a fixed delay, forever; ours backs off.
      source.close();
      if (this.#greeted) this.#lost("the connection was lost");
      else this.#explain(url);
    };
  }

  #stop() {
    this.#source?.close();
    this.#source = null;
    for (const timer of Object.values(this.#timers)) clearTimeout(timer);
    clearInterval(this.#timers.countdown);
    this.#timers = {};
  }

  #stream(workflowId) {
    return this.#streams.get(workflowId);
  }

  #hello(hello) {
    this.#greeted = true;
    clearTimeout(this.#timers.quiet);
    this.#timers.healthy = setTimeout(() => { this.#failures = 0; }, HEALTHY_MS);
    this.#setConnection("live", "live");
    for (const [workflowId, info] of Object.entries(hello.streams)) {
      const stream = this.#stream(workflowId);
      if (!stream) continue;
      // Not resumed: the server sends this stream from its start, so the panel starts empty.
      if (info.resumed_after === null) {
        stream.chain = info.chain;
        stream.handlers.reset?.(info);
      }
      this.#run(stream, info.run_id);
      noteState(stream.key, "connected", "connected", {
        chain: info.chain, resumed_after: info.resumed_after, stream_state: info.state,
      });
      // "resumed after N" after a failure; a reopen for a new follow set is business as usual.
      const resumed = this.#resuming && info.state === "live" && info.resumed_after !== null;
      this.#setStream(stream, resumed ? "resumed" : info.state, info);
    }
  }

  #chain(chain) {
    const stream = this.#stream(chain.stream);
    if (!stream) return;
    stream.chain = chain.chain;
    stream.handlers.reset?.(chain);
    this.#run(stream, chain.run_id);
    this.#setStream(stream, "live");
  }

  #item(item) {
    const stream = this.#stream(item.stream);
    if (!stream) return;
    noteItem(stream.key, item.chain, item.offset);
    stream.handlers.item(item.topic, item.data, item.offset, item.chain);
    // Items flow: whatever the badge said before (a slow lookup at hello), the stream is live.
    if (!["live", "resumed"].includes(stream.state)) this.#setStream(stream, "live");
  }

  #upstream(state) {
    const stream = this.#stream(state.stream);
    if (!stream) return;
    this.#run(stream, state.run_id);
    // A stream shown as resumed stays so until something else happens to it.
    if (state.state === "live" && stream.state === "resumed") return;
    this.#setStream(stream, state.state, state);
  }

  // A new run id in the same chain: the workflow continued as new.
  #run(stream, runId) {
    if (!runId || runId === stream.runId) return;
    const moved = stream.runId !== null;
    stream.runId = runId;
    stream.handlers.run?.(runId, moved);
  }

  #truncated(gap) {
    const stream = this.#stream(gap.stream);
    if (!stream) return;
    (dashboard.gaps[stream.key] ??= []).push(gap);
    stream.handlers.truncated?.(gap);
  }

  #end(end) {
    const stream = this.#stream(end.stream);
    if (!stream) return;
    this.#setStream(stream, "ended", end);
    stream.handlers.end?.(end);
  }

  #refused(refused) {
    const stream = refused.stream === null ? null : this.#stream(refused.stream);
    if (stream) {
      // The server starts this stream over (its `chain` event resets the panel); say why till then.
      this.#setStream(stream, "refused", refused);
      return;
    }
    // The whole connection: the server closes it, and the same request would be refused again.
    this.#stop();
    this.#setConnection("refused", `refused: ${refused.why}`);
  }

  // A connection that worked and broke: come back later, where we were.
  #lost(why) {
    this.#stop();
    this.#retry(backoffMs(++this.#failures), why);
  }

  // The EventSource failed before its `hello`, and it cannot say why: ask once, bounded.
  async #explain(url) {
    const source = this.#source;
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), PROBE_TIMEOUT_MS);
    let why = "the server is unreachable";
    let retryAfterMs = 0;
    try {
      const response = await fetch(url, { signal: controller.signal, cache: "no-store" });
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        why = `${response.status} ${typeof body.detail === "string" ? body.detail : response.statusText}`;
        retryAfterMs = 1000 * Number(response.headers.get("Retry-After") || 0);
        if (response.status === 400 && this.#token) {
          // A token this server no longer reads (an upgrade, say): start afresh, panels reset.
          this.#token = null;
          why = `${why}; starting afresh`;
        } else if (response.status < 500 && response.status !== 429) {
          // A refusal that retrying cannot change (a bad follow list) is not retried.
          this.#setConnection("refused", `refused: ${why}`);
          return;
        }
      } else {
        why = "the connection was lost";
      }
    } catch (err) {
      if (err.name === "AbortError") why = `no answer within ${PROBE_TIMEOUT_MS / 1000} s`;
    } finally {
      clearTimeout(timer);
      controller.abort(); // a stream that answered this time is not kept open
    }
    if (source !== this.#source) return; // the page reopened meanwhile
    this.#stop();
    this.#retry(Math.max(retryAfterMs, backoffMs(++this.#failures)), why);
  }

  #retry(delayMs, why) {
    const at = Date.now() + delayMs;
    const text = () => `reconnecting in ${Math.max(0, Math.ceil((at - Date.now()) / 1000))} s`;
    this.#setConnection("reconnecting", text(), why, { delay_ms: delayMs });
    this.#timers.countdown = setInterval(() => this.#paintConnection(text(), why), 1000);
    this.#timers.retry = setTimeout(() => this.#open(), delayMs);
  }

  // Every change is logged once (window.dashboard.connection); the countdown only repaints.
  #setConnection(state, text, why = "", extra = {}) {
    this.#state = state;
    dashboard.connection.push({ state, text, why, at: now(), follows: [...this.#streams.keys()], ...extra });
    this.#paintConnection(text, why);
  }

  #paintConnection(text, why) {
    this.#text = text;
    this.badge.dataset.state = this.#state;
    this.badge.textContent = text;
    this.detail.textContent = why ? `${why} · ${this.#follows()}` : this.#follows();
    for (const stream of this.#streams.values()) this.#paint(stream);
  }

  #follows() {
    const n = this.#streams.size;
    return `${n} stream${n === 1 ? "" : "s"} on one connection`;
  }

  #setStream(stream, state, info = {}) {
    const text = streamText(state, info);
    if (state !== stream.state || text !== stream.text) noteState(stream.key, state, text, { detail: info.detail ?? null });
    stream.state = state;
    stream.text = text;
    this.#paint(stream);
  }

  // While the connection is not live, every badge says so; then each says its stream's state.
  #paint(stream) {
    if (!stream.badge) return;
    const live = this.#state === "live";
    stream.badge.dataset.state = live ? stream.state : this.#state;
    stream.badge.textContent = live ? stream.text : this.#text;
  }
}
