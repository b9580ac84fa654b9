// Small DOM helpers shared by the panels: no framework, nothing to build.
"use strict";

/** The first element under `root` matching `selector`. */
export const $ = (root, selector) => root.querySelector(selector);

/** The element of `root` marked data-field=`name` (every value the page fills in). */
export const field = (root, name) => root.querySelector(`[data-field="${name}"]`);

/** A new element with attributes (`class` sets className) and children. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "class") node.className = value;
    else node.setAttribute(key, value);
  }
  node.append(...children);
  return node;
}

/** Put `node` first in `list` (dropping its "empty" line) and keep at most `max` entries. */
export function prepend(list, node, max) {
  list.querySelector("li.empty")?.remove();
  list.prepend(node);
  while (list.children.length > max) list.lastElementChild.remove();
}

// Run ids are UUIDv7: the first characters are a timestamp, the last ones tell runs apart.
export const short = (runId) => (runId || "").slice(-8);

/**
 * Build a panel's head from its data attributes, so the five panels share one
 * layout: number and title, the stream's badge (data-badge) and a button (data-button-*).
 */
export function panelHead(panel) {
  const { n, title, buttonAction: action, buttonLabel: label } = panel.dataset;
  const head = el("div", { class: "head" }, el("h2", {}, el("span", { class: "n" }, n), ` ${title}`));
  const badge = "badge" in panel.dataset ? el("span", { class: "conn", "data-state": "connecting" }, "connecting") : null;
  const button = action ? el("button", { type: "button", "data-action": action }, label) : null;
  head.append(...[badge, button].filter(Boolean));
  panel.prepend(head);
  return { badge, button };
}

/** Disable `button` while `work` runs, so a slow write cannot be sent twice. */
export async function busy(button, work) {
  button.disabled = true;
  try {
    return await work();
  } finally {
    button.disabled = false;
  }
}
