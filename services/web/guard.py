"""What every request passes: the Host allow-list, the security headers, a bug turned into a 500.

* **Host.** A DNS-rebinding page makes the browser send its own host name to
  this server; so any ``Host`` not in ``WEB_ALLOWED_HOSTS`` (any port) is
  answered 421 before a route runs, and the same-origin check of the writes
  then compares ``Origin`` with a host that is known to be ours.
* **Headers** on every response: a Content-Security-Policy that loads
  nothing from elsewhere and forbids framing (with X-Frame-Options for older
  browsers), ``nosniff``, and no referrer.
* **A bug** (an exception no route handled) is logged with its traceback and
  answered 500 with a JSON message; it is never reported as an outage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.shared import logs

log = logs.get(__name__)

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}
_ENCODED = [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]


def host_name(host: str) -> str:
    """The name part of a Host header value (``127.0.0.1:8000`` -> ``127.0.0.1``), lowercased."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def origin_host(origin: str) -> str:
    """The ``host[:port]`` of an Origin header value."""
    return urlsplit(origin).netloc.lower()


class Guard:
    """ASGI middleware: refuse unknown hosts, add the headers, answer a bug with 500."""

    def __init__(self, app: ASGIApp, *, allowed_hosts: Iterable[str]) -> None:
        self._app = app
        self._allowed = frozenset(h.lower() for h in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        host = _header(scope, b"host")
        if host_name(host) not in self._allowed:
            allowed = ", ".join(sorted(self._allowed))
            why = f"Host {host!r} is not served here; WEB_ALLOWED_HOSTS is {allowed}"
            await _json(send, 421, why)
            return
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *_ENCODED]
            await send(message)

        try:
            await self._app(scope, receive, send_with_headers)
        except Exception:
            log.exception("request failed", method=scope.get("method"), path=scope.get("path"))
            if started:
                raise  # the response is under way: all we can do is cut it
            await _json(send, 500, "internal error in the web service; its log has the traceback")


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


async def _json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *_ENCODED,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
