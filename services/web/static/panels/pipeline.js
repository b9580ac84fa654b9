// 2 · Pipeline: a bar per stage of the current run, and the subscriber's
// ledger beside it (read from its volume, polled).
"use strict";

import { $, el, field, panelHead, short } from "../dom.js";
import { dashboard, noteError } from "../hooks.js";
import { getJSON } from "../http.js";

const LEDGER_EVERY_MS = 2000;
const STALE_AFTER_S = 10; // the pipeline steps every few seconds: a quieter ledger is a subscriber down

export function pipelinePanel(config, connection) {
  const panel = document.getElementById("pipeline");
  const { badge } = panelHead(panel);
  const { workflow_id: workflowId, stages: names, final, topics } = config.pipeline;
  field(panel, "workflow").textContent = workflowId;
  const stages = $(panel, ".stages");
  const rows = new Map();
  let count = 0;

  function reset() {
    count = 0;
    field(panel, "count").textContent = "0";
    rows.clear();
    for (const name of names) {
      rows.set(name, el("div", { class: "stage" }, el("span", {}, name),
        el("div", { class: "bar" }, el("i")), el("span", { class: "count" }, "0")));
    }
    rows.set(final, el("div", { class: "stage final" }, el("span", {}, final), el("span", { class: "mark" }, "not yet")));
    stages.replaceChildren(...rows.values());
  }
  reset();

  function item(topic, event) {
    if (!topics.includes(topic)) return;
    count += 1;
    field(panel, "count").textContent = count;
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
  }

  connection.follow(workflowId, {
    key: "pipeline",
    badge,
    handlers: { reset, item, run: (runId) => { field(panel, "run").textContent = short(runId); } },
  });
  ledgerBox($(panel, ".ledger"));
}

function ledgerBox(box) {
  const resumes = $(box, "ol.resumes");
  let known = null;

  function show(ledger) {
    dashboard.ledger = ledger;
    if (ledger.state !== "ok") {
      field(box, "offset").textContent = ledger.state === "absent" ? "no ledger yet" : "damaged";
      field(box, "written").textContent = ledger.error || ledger.path;
      return;
    }
    const { position } = ledger;
    field(box, "offset").textContent = position?.next_offset > 0 ? position.next_offset - 1 : "–";
    field(box, "ledger-run").textContent = position ? `${short(position.run_id)}${position.finished ? " (finished)" : ""}` : "–";
    field(box, "totals").textContent = `${ledger.runs} · ${ledger.events}`;
    const age = Math.max(0, (Date.now() - Date.parse(ledger.modified)) / 1000);
    field(box, "written").textContent = `${age.toFixed(0)} s ago`;
    field(box, "written").classList.toggle("stale", age > STALE_AFTER_S);
    field(box, "resume-count").textContent = ledger.resumes.length;
    const fresh = known !== null && ledger.resumes.length > known;
    known = ledger.resumes.length;
    resumes.replaceChildren(...ledger.resumes.slice(-5).reverse().map((r, i) =>
      el("li", { class: fresh && i === 0 ? "new" : "" },
        el("time", { datetime: r.at }, new Date(r.at).toLocaleTimeString()),
        `resumed at offset ${r.next_offset} of run ${short(r.run_id)}`, r.why ? ` (${r.why})` : "")));
  }

  async function refresh() {
    try {
      show(await getJSON("/api/ledger"));
    } catch (err) {
      noteError(err);
      field(box, "written").textContent = err.message;
      field(box, "written").classList.add("stale");
    } finally {
      // The next read only after this one answered or timed out: reads never pile up.
      setTimeout(refresh, LEDGER_EVERY_MS);
    }
  }
  refresh();
}
