// Every fetch of the page is bounded: a server that does not answer is
// reported, never waited on in silence (a tab that the browser cannot give a
// connection to would otherwise sit there without a word).
"use strict";

const DEFAULT_TIMEOUT_MS = 10_000;

/** A request that failed, with a message that says which one and why. */
export class RequestFailed extends Error {
  constructor(message, status = null) {
    super(message);
    this.name = "RequestFailed";
    this.status = status;
  }
}

/** FastAPI's `detail`: a sentence, or a list of validation errors. */
function detailOf(body) {
  const detail = body?.detail;
  if (typeof detail === "string") return detail;
  if (Array.isArray(detail)) return detail.map((d) => d.msg ?? JSON.stringify(d)).join("; ");
  return "";
}

/**
 * `method url` with an optional JSON body; resolves to the JSON answer.
 * Rejects with RequestFailed on a timeout, a network fault or a non-2xx status.
 */
export async function request(method, url, { body, timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  const init = { method, cache: "no-store", signal: AbortSignal.timeout(timeoutMs) };
  if (body !== undefined) {
    // Writes are same-origin JSON: the server refuses anything else.
    init.headers = { "Content-Type": "application/json" };
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    if (err.name === "TimeoutError") {
      throw new RequestFailed(`${method} ${url}: no answer within ${timeoutMs / 1000} s`);
    }
    throw new RequestFailed(`${method} ${url}: the server is unreachable (${err.message})`);
  }
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const why = detailOf(answer) || response.statusText;
    throw new RequestFailed(`${method} ${url}: ${response.status} ${why}`, response.status);
  }
  return answer;
}

export const getJSON = (url, options) => request("GET", url, options);
export const postJSON = (url, body = {}, options) => request("POST", url, { ...options, body });
