// The dashboard: four panels, each fed by one Server-Sent Events stream.
//
// EventSource reconnects by itself and sends the last id it saw as
// Last-Event-ID, so a panel resumes exactly where it was. What each panel
// received is kept in window.dashboard, where a test (or you, in the
// console) can check it: ids in order, connection states, the ledger.
"use strict";

const dashboard = { received: {}, connections: {}, jumps: [], ledger: null, errors: [] };
window.dashboard = dashboard;

// ---------------------------------------------------------------------------
// Plumbing

const $ = (root, selector) => root.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

// Run ids are UUIDv7: the first characters are a timestamp, the last ones tell runs apart.
const short = (runId) => (runId || "").slice(-8);
const offsetOf = (id) => Number(id.slice(id.lastIndexOf(":") + 1));
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function getJSON(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(`${url}: ${response.status}`);
  return response.json();
}

// Writes are same-origin JSON POSTs of {}; the server refuses anything else.
async function post(url) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: "{}",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || `${response.status} ${response.statusText}`);
  return body;
}

function setBadge(badge, state, text) {
  badge.dataset.state = state;
  badge.textContent = text || state;
}

// ---------------------------------------------------------------------------
// One stream: an EventSource that follows a workflow id's runs.
//
// On `end` the run is closed and drained: we stop reconnecting. With
// followRuns, we then wait for the id's next run (the pipeline starts one
// every two minutes) and follow that one from its start.

class Follower {
  constructor({ key, workflowId, topics, badge, followRuns, handlers }) {
    Object.assign(this, { key, workflowId, topics, badge, followRuns, handlers });
    this.chain = null;
    this.lastId = null;
    this.source = null;
    this.closed = false;
    dashboard.received[key] = [];
    dashboard.connections[key] = [];
  }

  note(state, detail = {}) {
    dashboard.connections[this.key].push({ state, at: new Date().toISOString(), ...detail });
  }

  state(state, text) {
    if (this.badge) setBadge(this.badge, state, text);
  }

  async start() {
    // Know the id has a run before opening: an EventSource cannot read a 404.
    const latest = await getJSON(`/api/streams/${encodeURIComponent(this.workflowId)}`).catch(() => undefined);
    if (this.closed) return;
    if (!latest?.chain) {
      this.state("waiting", latest ? "no run yet" : "server unreachable");
      await sleep(3000);
      return this.start();
    }
    if (this.chain && latest.chain === this.chain && this.ended) {
      await sleep(2000); // still the run that ended: wait for the next one
      return this.start();
    }
    if (this.chain && latest.chain !== this.chain && (this.ended || !this.lastId)) {
      this.lastId = null; // a new run: its offsets start again at 0
    }
    this.ended = false;
    this.open();
  }

  open() {
    const query = new URLSearchParams({ topics: this.topics.join(",") });
    if (this.lastId) query.set("after", this.lastId); // a fresh EventSource sends no Last-Event-ID
    const source = new EventSource(`/streams/${encodeURIComponent(this.workflowId)}?${query}`);
    this.source = source;
    source.addEventListener("hello", (e) => this.onHello(JSON.parse(e.data)));
    source.addEventListener("state", (e) => this.onUpstream(JSON.parse(e.data)));
    source.addEventListener("truncated", (e) => this.onTruncated(JSON.parse(e.data), e.lastEventId));
    source.addEventListener("dropped", () => this.note("dropped"));
    source.addEventListener("end", (e) => this.onEnd(JSON.parse(e.data)));
    for (const topic of this.topics) {
      source.addEventListener(topic, (e) => this.onItem(topic, e));
    }
    source.onerror = () => this.onError(source);
  }

  onHello(hello) {
    if (hello.chain !== this.chain) {
      this.chain = hello.chain;
      this.handlers.reset?.(hello);
    }
    this.runId = hello.run_id;
    const resumed = hello.resumed_after;
    this.note("connected", { resumed_after: resumed, chain: hello.chain });
    if (hello.state !== "live") this.state(hello.state === "failed" ? "failed" : "reconnecting");
    else if (resumed !== null) this.state("resumed", `resumed after ${resumed}`);
    else this.state("live");
    this.handlers.run?.(hello.run_id, hello.chain);
  }

  onUpstream(state) {
    if (state.run_id !== this.runId) {
      this.runId = state.run_id;
      this.handlers.run?.(state.run_id, this.chain, true);
    }
    if (state.state === "live") {
      if (this.badge?.dataset.state === "reconnecting") this.state("live");
    } else if (state.state === "reconnecting") {
      this.state("reconnecting", "reconnecting to Temporal");
    } else {
      this.state(state.state === "failed" ? "failed" : "reconnecting", state.state);
    }
    this.note(`upstream ${state.state}`, { detail: state.detail });
  }

  onItem(topic, event) {
    this.lastId = event.lastEventId;
    dashboard.received[this.key].push(event.lastEventId);
    this.handlers.item(topic, JSON.parse(event.data), offsetOf(event.lastEventId));
  }

  onTruncated(gap, id) {
    this.lastId = id;
    this.handlers.truncated?.(gap);
  }

  onEnd(end) {
    this.source.close();
    this.ended = true;
    this.note("end", end);
    this.state("ended", `ended: ${end.status.toLowerCase()}`);
    this.handlers.end?.(end);
    if (this.followRuns && !this.closed) this.start();
  }

  onError(source) {
    if (source.readyState === EventSource.CONNECTING) {
      // The browser reconnects by itself, with Last-Event-ID.
      this.state("reconnecting");
      this.note("reconnecting");
      return;
    }
    // Refused (a cap, a restart, a run that is gone): try again ourselves.
    source.close();
    this.state("reconnecting", "retrying");
    this.note("refused");
    if (!this.closed && !this.ended) sleep(3000).then(() => this.start());
  }

  close() {
    this.closed = true;
    this.source?.close();
  }
}

// ---------------------------------------------------------------------------
// 1 · Orders

function ordersPanel(config) {
  const panel = document.getElementById("orders");
  const list = $(panel, "ol.orders");
  const button = $(panel, "[data-action=order]");
  const followers = [];

  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const order = await post("/api/orders");
      $(list, "li.empty")?.remove();
      const badge = el("span", { class: "conn", "data-state": "connecting" }, "connecting");
      const timeline = el("ol", { class: "timeline" });
      const card = el("li", { "data-order": order.workflow_id },
        el("div", { class: "order-head" }, el("b", {}, order.workflow_id), badge), timeline);
      list.prepend(card);
      const follower = new Follower({
        key: order.workflow_id, workflowId: order.workflow_id, topics: config.orders.topics,
        badge, followRuns: false,
        handlers: { item: (topic, data, offset) => timeline.append(orderLine(topic, data, offset)) },
      });
      followers.unshift(follower);
      follower.start();
      // Keep the four newest orders on screen; close the streams of the others.
      for (const old of followers.splice(4)) old.close();
      while (list.children.length > 4) list.lastElementChild.remove();
    } catch (err) {
      dashboard.errors.push(String(err));
      alert(`Could not place the order: ${err.message}`);
    } finally {
      button.disabled = false;
    }
  });
}

function orderLine(topic, data, offset) {
  const what = topic === "status" ? data.state : data.message;
  const retried = topic === "progress" && (data.attempt || 1) > 1;
  const line = el("li", { class: retried ? "retried" : "", "data-state": topic === "status" ? data.state : "" },
    el("span", { class: "off" }, `#${offset}`),
    el("span", { class: `topic ${topic}` }, topic),
    el("span", { class: "what" }, retried ? `${what} (attempt ${data.attempt})` : what));
  return line;
}

// ---------------------------------------------------------------------------
// 2 · Pipeline, and the subscriber's ledger beside it

function pipelinePanel(config) {
  const panel = document.getElementById("pipeline");
  const stages = $(panel, ".stages");
  const { workflow_id: workflowId, stages: names, final } = config.pipeline;
  $(panel, "[data-field=workflow]").textContent = workflowId;
  let count = 0;

  const rows = new Map();
  function reset() {
    stages.replaceChildren();
    rows.clear();
    count = 0;
    for (const name of names) {
      const row = el("div", { class: "stage" }, el("span", {}, name),
        el("div", { class: "bar" }, el("i")), el("span", { class: "count" }, "0"));
      rows.set(name, row);
      stages.append(row);
    }
    const done = el("div", { class: "stage final" }, el("span", {}, final), el("span", { class: "mark" }, "not yet"));
    rows.set(final, done);
    stages.append(done);
  }
  reset();

  new Follower({
    key: "pipeline", workflowId, topics: config.pipeline.topics, followRuns: true,
    badge: $(panel, ".head .conn"),
    handlers: {
      reset,
      run: (runId) => { $(panel, "[data-field=run]").textContent = short(runId); },
      item(topic, event) {
        count += 1;
        $(panel, "[data-field=count]").textContent = count;
        const row = rows.get(event.stage);
        if (!row) return;
        if (event.stage === final) {
          row.classList.add("done");
          $(row, ".mark").textContent = "complete";
          return;
        }
        $(row, ".bar > i").style.width = `${(100 * event.step) / event.steps}%`;
        $(row, ".count").textContent = `${event.step}/${event.steps}`;
        row.classList.toggle("done", event.step === event.steps);
      },
    },
  }).start();

  ledgerBox($(panel, ".ledger"));
}

function ledgerBox(box) {
  const field = (name) => $(box, `[data-field=${name}]`);
  const resumes = $(box, "ol.resumes");
  let known = null;

  async function refresh() {
    let ledger;
    try {
      ledger = await getJSON("/api/ledger");
    } catch {
      field("written").textContent = "dashboard unreachable";
      return;
    }
    dashboard.ledger = ledger;
    if (ledger.state !== "ok") {
      field("offset").textContent = ledger.state === "absent" ? "no ledger yet" : "damaged";
      field("written").textContent = ledger.error || ledger.path;
      return;
    }
    const position = ledger.position;
    field("offset").textContent = position && position.next_offset > 0 ? position.next_offset - 1 : "–";
    field("ledger-run").textContent = position ? `${short(position.run_id)}${position.finished ? " (finished)" : ""}` : "–";
    field("totals").textContent = `${ledger.runs} · ${ledger.events}`;
    const age = Math.max(0, (Date.now() - Date.parse(ledger.modified)) / 1000);
    field("written").textContent = `${age.toFixed(0)} s ago`;
    // The pipeline steps every few seconds: a ledger quiet for longer is a subscriber down.
    field("written").classList.toggle("stale", age > 10);
    field("resume-count").textContent = ledger.resumes.length;
    const fresh = known !== null && ledger.resumes.length > known;
    known = ledger.resumes.length;
    resumes.replaceChildren(...ledger.resumes.slice(-5).reverse().map((r, i) =>
      el("li", { class: fresh && i === 0 ? "new" : "" },
        el("time", { datetime: r.at }, new Date(r.at).toLocaleTimeString()),
        `resumed at offset ${r.next_offset} of run ${short(r.run_id)}`, r.why ? ` (${r.why})` : "")));
  }

  refresh();
  setInterval(refresh, 2000);
}

// ---------------------------------------------------------------------------
// 3 · Hub

function hubPanel(config) {
  const panel = document.getElementById("hub");
  const list = $(panel, "ol.headlines");
  const button = $(panel, "[data-action=publish]");
  const workflowId = config.hub.workflow_id;
  $(panel, "[data-field=workflow]").textContent = workflowId;
  button.textContent = `Publish ${config.hub.events} headlines`;
  let rollovers = 0;

  const add = (node) => {
    $(list, "li.empty")?.remove();
    list.prepend(node);
    while (list.children.length > 40) list.lastElementChild.remove();
  };

  new Follower({
    key: "hub", workflowId, topics: config.hub.topics, followRuns: true,
    badge: $(panel, ".head .conn"),
    handlers: {
      run(runId, chain, moved) {
        $(panel, "[data-field=run]").textContent = short(runId);
        if (moved) {
          rollovers += 1;
          $(panel, "[data-field=rollovers]").textContent = rollovers;
          add(el("li", { class: "note" }, `continued as new: run ${short(runId)}; the ids go on`));
        }
      },
      item(topic, h, offset) {
        add(el("li", { class: h.final ? "final" : "" },
          el("span", { class: "off" }, `#${offset}`),
          el("span", { class: "off" }, `${h.source || "publisher"} ${h.seq}`),
          el("span", {}, h.final ? `end of ${h.source || "stream"}` : h.text)));
      },
      truncated: (gap) => add(el("li", { class: "note" },
        `${gap.dropped} headline(s) rolled out of the hub (${gap.from_offset}–${gap.to_offset - 1})`)),
    },
  }).start();

  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await post("/api/hub/publish");
    } catch (err) {
      dashboard.errors.push(String(err));
      add(el("li", { class: "note" }, `publish failed: ${err.message}`));
    } finally {
      button.disabled = false;
    }
  });
}

// ---------------------------------------------------------------------------
// 4 · Ticker: every tick with the retained window, and a slow lane

function tickerPanel(config) {
  const panel = document.getElementById("ticker");
  const { workflow_id: workflowId, keep, ticks, slow_delay_seconds: delay } = config.ticker;
  $(panel, "[data-field=workflow]").textContent = workflowId;
  $(panel, "[data-field=keep]").textContent = keep;
  $(panel, "[data-field=delay]").textContent = delay;
  const fast = $(panel, "[data-lane=fast]");
  const slow = $(panel, "[data-lane=slow]");
  const jumps = $(panel, "ol.jumps");
  const slowBadge = $(panel, "[data-lane-state]");
  let slowLane = null;

  const cells = (lane) => {
    lane.replaceChildren(...Array.from({ length: ticks }, (_, n) => el("span", { class: "cell" }, n)));
  };
  const cell = (lane, n) => {
    while (lane.children.length <= n) lane.append(el("span", { class: "cell" }, lane.children.length));
    return lane.children[n];
  };

  new Follower({
    key: "ticker", workflowId, topics: config.ticker.topics, followRuns: true,
    badge: $(panel, ".head .conn"),
    handlers: {
      reset(hello) {
        cells(fast);
        cells(slow);
        jumps.replaceChildren();
        slowLane?.stop();
        slowLane = new SlowLane(workflowId, hello.chain, config.ticker.topics, delay * 1000, {
          badge: slowBadge,
          tick(number) { cell(slow, number).classList.add("seen"); },
          jumped(gap) {
            dashboard.jumps.push(gap);
            for (let n = gap.from_offset; n < gap.to_offset; n += 1) cell(slow, n).classList.add("dropped");
            jumps.prepend(el("li", {},
              `jumped past truncated ticks ${gap.from_offset} → ${gap.to_offset} (${gap.dropped} dropped)`));
          },
        });
        slowLane.run();
      },
      run: (runId) => { $(panel, "[data-field=run]").textContent = short(runId); },
      item(topic, tick) {
        cell(fast, tick.number).classList.add("seen");
        // The workflow truncates to its last `keep` ticks after each one.
        for (const node of fast.querySelectorAll(".retained")) node.classList.remove("retained");
        for (let n = Math.max(0, tick.number - keep + 1); n <= tick.number; n += 1) {
          cell(fast, n).classList.add("retained");
        }
      },
      truncated() {},
    },
  }).start();

  $(panel, "[data-action=ticker]").addEventListener("click", async (e) => {
    e.target.disabled = true;
    try {
      await post("/api/ticker");
    } catch (err) {
      dashboard.errors.push(String(err));
    } finally {
      e.target.disabled = false;
    }
  });
}

// A reader that takes one tick, goes away for `delayMs`, then resumes after it
// with ?after=: what ticker-slow does. Ticks truncated meanwhile come back as
// one `truncated` event, which it shows as a jump.
class SlowLane {
  constructor(workflowId, chain, topics, delayMs, view) {
    Object.assign(this, { workflowId, chain, topics, delayMs, view });
    this.after = null;
    this.stopped = false;
  }

  stop() {
    this.stopped = true;
    this.source?.close();
  }

  async run() {
    while (!this.stopped) {
      const outcome = await this.readOne();
      if (outcome === "end") {
        setBadge(this.view.badge, "ended", "done");
        return;
      }
      setBadge(this.view.badge, "waiting", outcome === "error" ? "retrying" : "reading slowly");
      await sleep(this.delayMs);
    }
  }

  readOne() {
    return new Promise((resolve) => {
      const query = new URLSearchParams({ topics: this.topics.join(",") });
      if (this.after) query.set("after", this.after);
      const source = new EventSource(`/streams/${encodeURIComponent(this.workflowId)}?${query}`);
      this.source = source;
      const done = (outcome) => { source.close(); resolve(outcome); };
      source.addEventListener("hello", (e) => {
        if (JSON.parse(e.data).chain !== this.chain) done("end"); // another run: the fast lane resets us
        else setBadge(this.view.badge, "live", this.after ? `resumed after ${offsetOf(this.after)}` : "live");
      });
      source.addEventListener("truncated", (e) => {
        this.after = e.lastEventId;
        this.view.jumped(JSON.parse(e.data));
      });
      for (const topic of this.topics) {
        source.addEventListener(topic, (e) => {
          this.after = e.lastEventId;
          this.view.tick(JSON.parse(e.data).number);
          done("tick");
        });
      }
      source.addEventListener("end", () => done("end"));
      source.onerror = () => done("error");
    });
  }
}

// ---------------------------------------------------------------------------

window.addEventListener("error", (e) => dashboard.errors.push(String(e.message)));

getJSON("/api/config").then((config) => {
  ordersPanel(config);
  pipelinePanel(config);
  hubPanel(config);
  tickerPanel(config);
});
