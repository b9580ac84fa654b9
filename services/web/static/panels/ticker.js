// 4 · Ticker: every tick with the window the workflow retains (fast lane, on
// the page's connection), and a slow lane that reads one tick, goes away,
// and comes back by its resume token: what `ticker-slow` does. Ticks
// truncated meanwhile come back as one `truncated` gap, shown as a jump.
"use strict";

import { $, busy, el, field, panelHead, short } from "../dom.js";
import { dashboard, noteError } from "../hooks.js";
import { postJSON } from "../http.js";

// One read of the slow lane holds a connection until its tick comes; it never waits longer.
const SLOW_READ_TIMEOUT_MS = 10_000;

export function tickerPanel(config, connection) {
  const panel = document.getElementById("ticker");
  const { badge, button } = panelHead(panel);
  const { workflow_id: workflowId, keep, ticks, topics, slow_delay_seconds: delay } = config.ticker;
  field(panel, "workflow").textContent = workflowId;
  field(panel, "keep").textContent = keep;
  field(panel, "delay").textContent = delay;
  const fast = $(panel, "[data-lane=fast]");
  const slow = $(panel, "[data-lane=slow]");
  const jumps = $(panel, "ol.jumps");
  const slowBadge = $(panel, "[data-lane-state]");
  let slowLane = null;
  let head = -1; // the newest tick offset the fast lane has seen in this chain

  const blank = (lane) => lane.replaceChildren(...Array.from({ length: ticks }, (_, n) => el("span", { class: "cell" }, n)));
  const cell = (lane, n) => {
    while (lane.children.length <= n) lane.append(el("span", { class: "cell" }, lane.children.length));
    return lane.children[n];
  };

  const view = {
    badge: slowBadge,
    head: () => head,
    tick: (number) => cell(slow, number).classList.add("seen"),
    jumped(gap) {
      dashboard.jumps.push(gap);
      for (let n = gap.from_offset; n < gap.to_offset; n += 1) cell(slow, n).classList.add("dropped");
      jumps.prepend(el("li", {}, `jumped past truncated ticks ${gap.from_offset} → ${gap.to_offset} (${gap.dropped} dropped)`));
    },
  };

  const handlers = {
    reset(info) {
      head = -1;
      blank(fast);
      blank(slow);
      jumps.replaceChildren();
      slowLane?.stop();
      slowLane = info.chain ? new SlowLane(workflowId, info.chain, topics, delay * 1000, view) : null;
      slowLane?.run();
    },
    run: (runId) => { field(panel, "run").textContent = short(runId); },
    item(topic, tick, offset) {
      if (!topics.includes(topic)) return;
      head = Math.max(head, offset);
      cell(fast, tick.number).classList.add("seen");
      // The workflow truncates to its last `keep` ticks after each one.
      for (const node of fast.querySelectorAll(".retained")) node.classList.remove("retained");
      for (let n = Math.max(0, tick.number - keep + 1); n <= tick.number; n += 1) cell(fast, n).classList.add("retained");
    },
    end: () => slowLane?.finish(),
  };
  connection.follow(workflowId, { key: "ticker", badge, handlers });

  button.addEventListener("click", () => busy(button, async () => {
    try {
      await postJSON("/api/ticker");
    } catch (err) {
      noteError(err);
      jumps.prepend(el("li", {}, `could not start the ticker: ${err.message}`));
    }
  }));
}

// The slow reader. It reads only when the fast lane has seen a tick past its
// position, so a read never waits on a tick still to come, and it holds its
// connection for one tick at the most.
class SlowLane {
  constructor(workflowId, chain, topics, delayMs, view) {
    Object.assign(this, { workflowId, chain, topics, delayMs, view });
    this.token = null; // its own resume position: it follows only this id
    this.offset = -1;
    this.stopped = false;
    this.chainEnded = false;
  }

  stop() {
    this.stopped = true;
    this.source?.close();
  }

  finish() {
    this.chainEnded = true;
  }

  say(state, text) {
    this.view.badge.dataset.state = state;
    this.view.badge.textContent = text;
  }

  async run() {
    this.say("waiting", "waiting for ticks");
    while (!this.stopped) {
      if (this.view.head() <= this.offset) {
        if (this.chainEnded) return this.say("ended", "done");
        await sleep(500); // nothing newer to read yet
        continue;
      }
      const outcome = await this.readOne();
      if (outcome === "end") return this.say("ended", "done");
      if (this.stopped) return;
      this.say("waiting", outcome === "tick" ? "away (reading slowly)" : `retrying: ${outcome}`);
      await sleep(this.delayMs);
    }
  }

  readOne() {
    return new Promise((resolve) => {
      const query = new URLSearchParams({ follow: this.workflowId });
      if (this.token) query.set("after", this.token);
      const source = new EventSource(`/events?${query}`);
      this.source = source;
      const timer = setTimeout(() => done(`no tick within ${SLOW_READ_TIMEOUT_MS / 1000} s`), SLOW_READ_TIMEOUT_MS);
      const done = (outcome) => {
        clearTimeout(timer);
        source.close();
        resolve(outcome);
      };
      const on = (type, handle) => source.addEventListener(type, (e) => handle(JSON.parse(e.data), e.lastEventId));
      on("hello", () => this.say("live", this.token ? `resumed after ${this.offset}` : "live"));
      on("truncated", (gap, token) => {
        this.token = token;
        this.view.jumped(gap);
      });
      on("item", (item, token) => {
        if (item.chain !== this.chain) return done("end"); // another run: the fast lane resets us
        this.token = token;
        this.offset = item.offset;
        if (!this.topics.includes(item.topic)) return;
        this.view.tick(item.data.number);
        done("tick");
      });
      on("end", () => done("end"));
      on("refused", (refused) => done(`refused: ${refused.why}`));
      source.onerror = () => done("the connection failed");
    });
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
