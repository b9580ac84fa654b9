// What the page received and showed, kept where a test (or you, in the
// console) can read it: window.dashboard.
"use strict";

export const dashboard = {
  received: {}, // panel key -> ["<chain>:<offset>", ...] in the order the items arrived
  gaps: {}, // panel key -> the `truncated` gaps the server reported
  connections: {}, // panel key -> [{state, text, at, ...}] each change of its badge
  connection: [], // the page's one connection: [{state, text, at, follows}]
  turns: {}, // Assistant turn -> what that turn's view shows (see panels/assistant.js)
  asked: [], // the Assistant's answers to the page's questions: {workflow_id, turn, question_id}
  jumps: [], // the ticker's slow lane: the truncations it jumped
  ledger: null, // the last /api/ledger answer
  errors: [], // uncaught errors and failed requests
};
window.dashboard = dashboard;

const now = () => new Date().toISOString();

/** Record a change of panel `key`'s connection state. */
export function noteState(key, state, text, detail = {}) {
  (dashboard.connections[key] ??= []).push({ state, text, at: now(), ...detail });
}

/** Record an item of panel `key` by its chain and offset. */
export function noteItem(key, chain, offset) {
  (dashboard.received[key] ??= []).push(`${chain}:${offset}`);
}

/** Record a failure the page reported to the reader. */
export function noteError(error) {
  dashboard.errors.push({ at: now(), error: String(error?.message ?? error) });
}

export { now };
