"""A stand-in for a hosted model: a local HTTP server speaking OpenAI's chat-completions protocol.

A hosted model is the one part of scenario 5 that cannot run here (no key, no
network), so the tests point the llm-worker's real ``openai`` client at this
server instead. It speaks the real wire format: ``POST /v1/chat/completions``
with ``stream: true`` answers Server-Sent Events, one ``data: {chunk}`` per
``chat.completion.chunk`` and ``data: [DONE]`` at the end; errors are
OpenAI's error bodies (``{"error": {"message", "type", "param", "code"}}``)
with their HTTP statuses. What it answers depends on the model asked:

* ``MODEL`` streams ``ANSWER`` in small chunks;
* ``FLAKY`` answers 429, then 500, then streams like ``MODEL``;
* any other model: 404, model_not_found;
* a key other than ``KEY``: 401, invalid_api_key.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "stand-in-1"
FLAKY = "stand-in-flaky"
KEY = "sk-test-" + "0123456789abcdef"
ANSWER = (
    "A stand-in model answers here.\n"
    "It streams this text in small chunks, the way a hosted model does. "
    "Then it says it is done."
)
FLAKY_FAULTS = (
    (429, "rate_limit_exceeded", "Rate limit reached for requests. Please try again in 1s."),
    (500, "server_error", "The server had an error while processing your request."),
)
CHUNK_PAUSE_S = 0.02


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: Counter[str] = Counter()  # model -> chat requests received
        self.lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the test's output is the services' logs

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        model = str(body.get("model"))
        with self.server.lock:
            self.server.requests[model] += 1
            seen = self.server.requests[model]
        if self.path != "/v1/chat/completions":
            self._error(404, "invalid_request_error", "unknown_url", f"Unknown URL {self.path}")
        elif self.headers.get("Authorization") != f"Bearer {KEY}":
            given = self.headers.get("Authorization", "").removeprefix("Bearer ")
            self._error(
                401,
                "invalid_request_error",
                "invalid_api_key",
                f"Incorrect API key provided: {given[:3]}***{given[-2:]}.",
            )
        elif model == FLAKY and seen <= len(FLAKY_FAULTS):
            status, code, message = FLAKY_FAULTS[seen - 1]
            self._error(status, "requests" if status == 429 else "server_error", code, message)
        elif model in (MODEL, FLAKY):
            self._stream(model)
        else:
            self._error(
                404,
                "invalid_request_error",
                "model_not_found",
                f"The model `{model}` does not exist or you do not have access to it.",
            )

    def _error(self, status: int, kind: str, code: str, message: str) -> None:
        raw = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw.encode())

    def _stream(self, model: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        words = ANSWER.split(" ")
        pieces = [w if i == 0 else " " + w for i, w in enumerate(words)]
        deltas: list[dict[str, Any]] = [{"role": "assistant", "content": ""}]
        deltas += [{"content": piece} for piece in pieces]
        for number, delta in enumerate([*deltas, {}]):
            chunk = {
                "id": "chatcmpl-standin",
                "object": "chat.completion.chunk",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {
                        "index": 0,
                        "delta": delta,
                        "finish_reason": "stop" if number == len(deltas) else None,
                    }
                ],
            }
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
            time.sleep(CHUNK_PAUSE_S)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


@contextmanager
def model_server() -> Iterator[ModelServer]:
    """The stand-in, serving on a free loopback port until the block ends."""
    server = ModelServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
