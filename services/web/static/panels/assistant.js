// 5 · Assistant: one conversation workflow; a question is a turn, its answer
// streams as deltas. The rendering rule lives in transcript.js; this panel
// shows what it reports: the text as it grows, an attempt that started over
// struck out, late deltas fenced, and the final check against the result.
"use strict";

import { $, el, field, panelHead, short } from "../dom.js";
import { dashboard, noteError } from "../hooks.js";
import { postJSON } from "../http.js";
import { Transcript } from "../transcript.js";

// An ask starts the workflow if need be and waits for its Update to be accepted.
const ASK_TIMEOUT_MS = 30_000;
const MAX_PROMPT = 4000;

export function assistantPanel(config, connection) {
  const panel = document.getElementById("assistant");
  const { badge } = panelHead(panel);
  const { workflow_id: workflowId, topics, model } = config.assistant;
  field(panel, "workflow").textContent = workflowId;
  field(panel, "model").textContent = model;
  const list = $(panel, "ol.turns");
  const views = new Map(); // turn number -> its TurnView
  let transcript = new Transcript();

  const handlers = {
    reset() {
      transcript = new Transcript();
      views.clear();
      for (const key of Object.keys(dashboard.turns)) delete dashboard.turns[key];
      list.replaceChildren(el("li", { class: "empty" }, "No question yet: ask one below."));
      field(panel, "turns").textContent = "0";
    },
    run: (runId) => { field(panel, "run").textContent = short(runId); },
    // A conversation continues as new keeping the last few turns: older ones are gone.
    truncated(gap) {
      list.querySelector("li.empty")?.remove();
      list.prepend(el("li", { class: "note" },
        `earlier turns rolled out of the conversation's log (offsets ${gap.from_offset}–${gap.to_offset - 1})`));
    },
    item(topic, data) {
      if (!topics.includes(topic)) return;
      const { turn, change } = transcript.apply(topic, data);
      if (change === "ignored" || change === "repeated") return;
      // Keep the newest text in sight, unless the reader scrolled up to read.
      const follow = nearBottom(list);
      let view = views.get(turn.turn);
      if (!view) {
        view = new TurnView(turn.turn);
        views.set(turn.turn, view);
        list.querySelector("li.empty")?.remove();
        list.append(view.node);
        field(panel, "turns").textContent = views.size;
      }
      view.render(turn, change);
      if (follow) list.scrollTop = list.scrollHeight;
    },
  };
  connection.follow(workflowId, { key: "assistant", badge, handlers });
  askForm($(panel, "form.ask"));
}

function nearBottom(box) {
  return box.scrollHeight - box.scrollTop - box.clientHeight < 40;
}

// The prompt box: POST /api/assistant {"prompt"}; the answer arrives on the stream.
function askForm(form) {
  const input = form.elements.prompt;
  const button = $(form, "button");
  const status = $(form, "[data-field=ask-status]");
  input.maxLength = MAX_PROMPT;
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) {
      e.preventDefault();
      form.requestSubmit();
    }
  });
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const prompt = input.value.trim();
    if (!prompt) {
      status.textContent = "Type a question first.";
      return;
    }
    button.disabled = true;
    status.textContent = "asking…";
    try {
      const asked = await postJSON("/api/assistant", { prompt }, { timeoutMs: ASK_TIMEOUT_MS });
      dashboard.asked.push(asked);
      status.textContent = `turn ${asked.turn} asked`;
      input.value = "";
    } catch (err) {
      noteError(err);
      status.textContent = `Could not ask: ${err.message}`;
    } finally {
      button.disabled = false;
    }
  });
}

// One turn on screen: the question, the attempts that were discarded, the answer.
class TurnView {
  constructor(n) {
    this.n = n;
    this.question = el("div", { class: "q" }, el("span", { class: "who" }, "You"), el("p", { class: "text" }, "…"));
    this.rewinds = el("div", { class: "rewinds" });
    this.answer = el("p", { class: "answer" });
    this.meta = el("p", { class: "turn-meta" });
    this.node = el("li", { class: "turn", "data-turn": String(n), "data-state": "asked" },
      this.question,
      el("div", { class: "a" }, el("span", { class: "who" }, "Assistant"),
        el("div", {}, this.rewinds, this.answer, this.meta)));
    this.shownRewinds = 0;
    this.grew = 0; // how many times the answer changed while it streamed
  }

  render(turn, change) {
    this.node.dataset.state = turn.state;
    if (turn.prompt !== null) $(this.question, ".text").textContent = turn.prompt;
    while (this.shownRewinds < turn.rewinds.length) this.rewinds.append(rewindNode(turn.rewinds[this.shownRewinds++]));
    if (change !== "fenced" && this.answer.textContent !== turn.text) {
      this.answer.textContent = turn.text;
      if (turn.state === "streaming") this.grew += 1;
    }
    this.meta.replaceChildren(...metaParts(turn));
    this.meta.dataset.check = turn.matched === null ? "" : String(turn.matched);
    dashboard.turns[this.n] = {
      prompt: turn.prompt,
      state: turn.state,
      attempt: turn.attempt,
      shown: this.answer.textContent, // what the page shows, read back from the page
      grew: this.grew,
      rewinds: turn.rewinds.map(({ from, to, discarded, why }) => ({ from, to, chars: discarded.length, why })),
      rewind_shown: this.rewinds.querySelectorAll(".rewind").length,
      fenced: turn.fenced,
      repeated: turn.repeated,
      matched: turn.matched,
      result_chars: turn.state === "complete" ? turn.text.length : null,
      error: turn.error,
    };
  }
}

// A discarded attempt stays visible, struck out, with why it was thrown away.
function rewindNode({ from, to, discarded, why }) {
  const said = `attempt ${to} started over: discarded ${discarded.length} chars of attempt ${from}`;
  return el("div", { class: "rewind" },
    el("del", {}, discarded || "(nothing shown yet)"),
    el("p", { class: "note" }, why ? `${said} (${why})` : said));
}

function metaParts(turn) {
  const parts = [];
  if (turn.state === "streaming") parts.push(el("span", { class: "streaming" }, `attempt ${turn.attempt} · streaming · ${turn.text.length} chars`));
  if (turn.state === "complete") {
    parts.push(turn.matched
      ? el("span", { class: "ok" }, `✓ equals the workflow's result · ${turn.text.length} chars · attempt ${turn.attempt}`)
      : el("span", { class: "bad" }, `✗ built ${turn.built.length} chars that differ from the result; showing the result (${turn.text.length} chars)`));
  }
  if (turn.state === "failed") parts.push(el("span", { class: "bad" }, `failed: ${turn.error}`));
  if (turn.fenced) parts.push(el("span", { class: "fenced" }, ` · ${turn.fenced} late delta${turn.fenced === 1 ? "" : "s"} fenced`));
  return parts;
}
