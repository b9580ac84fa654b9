// The dashboard: five panels, every stream on one connection (connection.js).
// What the page received and showed is kept in window.dashboard (hooks.js).
"use strict";

import { Connection, backoffMs } from "./connection.js";
import { noteError } from "./hooks.js";
import { getJSON } from "./http.js";
import { assistantPanel } from "./panels/assistant.js";
import { hubPanel } from "./panels/hub.js";
import { ordersPanel } from "./panels/orders.js";
import { pipelinePanel } from "./panels/pipeline.js";
import { tickerPanel } from "./panels/ticker.js";

window.addEventListener("error", (e) => noteError(e.message));
window.addEventListener("unhandledrejection", (e) => noteError(e.reason));

const alertBox = document.getElementById("alert");

// The page cannot draw a panel without the configuration: keep asking, and say so.
async function loadConfig(failures = 0) {
  try {
    const config = await getJSON("/api/config");
    alertBox.hidden = true;
    return config;
  } catch (err) {
    noteError(err);
    const delay = backoffMs(failures + 1);
    alertBox.hidden = false;
    alertBox.textContent = `${err.message}; trying again in ${Math.ceil(delay / 1000)} s`;
    await new Promise((resolve) => setTimeout(resolve, delay));
    return loadConfig(failures + 1);
  }
}

const config = await loadConfig();
const connection = new Connection({
  badge: document.getElementById("connection"),
  detail: document.getElementById("connection-detail"),
});
ordersPanel(config, connection);
pipelinePanel(config, connection);
hubPanel(config, connection);
tickerPanel(config, connection);
assistantPanel(config, connection);
