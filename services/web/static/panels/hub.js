// 3 · Hub: headlines published into a passive workflow, newest first; the
// run moves on by continue-as-new and the offsets go on.
"use strict";

import { $, busy, el, field, panelHead, prepend, short } from "../dom.js";
import { noteError } from "../hooks.js";
import { postJSON } from "../http.js";

const SHOWN = 40;
// Publishing goes through Temporal batch by batch: it may take a while, but not forever.
const PUBLISH_TIMEOUT_MS = 60_000;

export function hubPanel(config, connection) {
  const panel = document.getElementById("hub");
  const { badge, button } = panelHead(panel);
  const { workflow_id: workflowId, topics, events } = config.hub;
  const list = $(panel, "ol.headlines");
  field(panel, "workflow").textContent = workflowId;
  button.textContent = `Publish ${events} headlines`;
  let rollovers = 0;
  const add = (node) => prepend(list, node, SHOWN);

  const handlers = {
    reset() {
      rollovers = 0;
      field(panel, "rollovers").textContent = "0";
      list.replaceChildren(el("li", { class: "empty" }, "No headline yet: publish some."));
    },
    run(runId, moved) {
      field(panel, "run").textContent = short(runId);
      if (!moved) return;
      rollovers += 1;
      field(panel, "rollovers").textContent = rollovers;
      add(el("li", { class: "note" }, `continued as new: run ${short(runId)}; the offsets go on`));
    },
    item(topic, h, offset) {
      if (!topics.includes(topic)) return;
      add(el("li", { class: h.final ? "final" : "" },
        el("span", { class: "off" }, `#${offset}`),
        el("span", { class: "off" }, `${h.source || "publisher"} ${h.seq}`),
        el("span", {}, h.final ? `end of ${h.source || "stream"}` : h.text)));
    },
    truncated: (gap) => add(el("li", { class: "note" },
      `${gap.dropped} headline(s) rolled out of the hub (${gap.from_offset}–${gap.to_offset - 1})`)),
  };
  connection.follow(workflowId, { key: "hub", badge, handlers });

  button.addEventListener("click", () => busy(button, async () => {
    try {
      await postJSON("/api/hub/publish", {}, { timeoutMs: PUBLISH_TIMEOUT_MS });
    } catch (err) {
      noteError(err);
      add(el("li", { class: "note" }, `publish failed: ${err.message}`));
    }
  }));
}
