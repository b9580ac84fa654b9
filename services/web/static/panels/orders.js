// 1 · Orders: each order placed from the page gets a card and is followed on
// the page's one connection until its run ends.
"use strict";

import { $, busy, el, panelHead, prepend } from "../dom.js";
import { noteError } from "../hooks.js";
import { postJSON } from "../http.js";

const SHOWN = 4; // orders kept on screen; the older ones are no longer followed

export function ordersPanel(config, connection) {
  const panel = document.getElementById("orders");
  const { button } = panelHead(panel);
  const list = $(panel, "ol.orders");
  const topics = new Set(config.orders.topics);
  const shown = []; // workflow ids, newest first

  button.addEventListener("click", () => busy(button, async () => {
    let order;
    try {
      order = await postJSON("/api/orders");
    } catch (err) {
      noteError(err);
      prepend(list, el("li", { class: "note" }, `Could not place the order: ${err.message}`), SHOWN + 1);
      return;
    }
    const { card, badge, timeline } = orderCard(order.workflow_id);
    prepend(list, card, SHOWN);
    shown.unshift(order.workflow_id);
    // Orders that ended, or fell off the screen, need no stream: they leave the follow set
    // in the same reopen that adds the new one.
    for (const id of shown.splice(SHOWN)) connection.unfollow(id);
    for (const id of shown.slice(1)) if (connection.ended(id)) connection.unfollow(id);
    connection.follow(order.workflow_id, {
      key: order.workflow_id,
      badge,
      handlers: {
        reset: () => timeline.replaceChildren(),
        item(topic, data, offset) {
          if (topics.has(topic)) timeline.append(orderLine(topic, data, offset));
        },
      },
    });
  }));
}

function orderCard(workflowId) {
  const badge = el("span", { class: "conn", "data-state": "connecting" }, "connecting");
  const timeline = el("ol", { class: "timeline" });
  const card = el("li", { "data-order": workflowId },
    el("div", { class: "order-head" }, el("b", {}, workflowId), badge), timeline);
  return { card, badge, timeline };
}

// `status` comes from the workflow, `progress` from its activity; a retried attempt is marked.
function orderLine(topic, data, offset) {
  const isStatus = topic === "status";
  const what = isStatus ? data.state : data.message;
  const retried = !isStatus && (data.attempt || 1) > 1;
  return el("li", { class: retried ? "retried" : "", "data-state": isStatus ? data.state : "" },
    el("span", { class: "off" }, `#${offset}`),
    el("span", { class: `topic ${topic}` }, topic),
    el("span", { class: "what" }, retried ? `${what} (attempt ${data.attempt})` : what));
}
