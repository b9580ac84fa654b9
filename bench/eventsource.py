"""A lean EventSource for the bench: one Server-Sent Events response read off a raw socket.

A thousand viewers on the web service's machine are the bench's measuring
instrument, and an instrument should take as little of the machine as it
can. Through httpx a viewer cost about 0.1 ms of CPU per event, so 1,000 of
them at 10 events/s took a core of the two here, and the web's latency rose
with that load rather than with its own. This reads the same bytes a
browser's EventSource reads (an HTTP/1.1 response, chunked, carrying SSE
frames) in an :class:`asyncio.Protocol`: no per-event coroutine or timer.
The server sees the same request and does the same work either way.

It takes apart what the web service sends (a status line, headers, a
chunked body, lines ending in CRLF or LF) and reads the lines with the
tests' own parser, ``testkit.sse``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

from bench.http1 import split_head
from testkit.sse import SseEvent, SseParser

# Called with each dispatched event; True ends the stream.
OnEvent = Callable[[SseEvent], bool]


class _Connection(asyncio.Protocol):
    """One response: the head, then chunks, then SSE lines, dispatched as they complete."""

    def __init__(self, request: bytes, on_event: OnEvent, done: asyncio.Future[str]) -> None:
        self._request = request
        self._on_event = on_event
        self._done = done
        self._transport: asyncio.Transport | None = None
        self._raw = b""  # received, not yet taken apart into chunks
        self._text = b""  # dechunked body, not yet a whole line
        self._head = True
        self._parser = SseParser()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101  a TCP connection is one
        self._transport = transport
        transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        why = f"connection lost: {exc}" if exc else "the server closed the stream"
        self._finish(why)

    def data_received(self, data: bytes) -> None:
        self._raw += data
        if self._head and not self._read_head():
            return
        self._read_chunks()

    def _read_head(self) -> bool:
        split = split_head(self._raw)
        if split is None:
            return False
        head, self._raw = split
        if head.status != 200:
            body = " ".join(self._raw.decode(errors="replace").split())  # one line
            self._finish(f"HTTP {head.status} {head.reason}: {body[:160]}")
            return False
        if head.headers.get("transfer-encoding", "").lower() != "chunked":
            self._finish(f"expected a chunked response, got headers {head.headers}")
            return False
        self._head = False
        return True

    def _read_chunks(self) -> None:
        while not self._done.done():
            size_end = self._raw.find(b"\r\n")
            if size_end < 0:
                return
            size = int(self._raw[:size_end], 16)
            if size == 0:
                self._finish("the server closed the stream")
                return
            start = size_end + 2
            if len(self._raw) < start + size + 2:
                return  # the rest of this chunk is still on its way
            self._text += self._raw[start : start + size]
            self._raw = self._raw[start + size + 2 :]
            self._read_lines()

    def _read_lines(self) -> None:
        *lines, self._text = self._text.split(b"\n")
        for line in lines:
            event = self._parser.line(line.rstrip(b"\r").decode())
            if event is not None and self._on_event(event):
                self._finish("")
                return

    def _finish(self, why: str) -> None:
        if not self._done.done():
            self._done.set_result(why)
        if self._transport is not None:
            self._transport.close()


async def read(url: str, on_event: OnEvent) -> str:
    """GET ``url`` as an EventSource would and feed its events to ``on_event``.

    Returns "" once ``on_event`` returned True, else why the stream stopped
    (an HTTP status with the start of its body, or the connection's end).
    Raises OSError if it cannot connect.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = f"{parts.path}?{parts.query}" if parts.query else parts.path
    request = (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n"
    ).encode()
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str] = loop.create_future()
    transport, _ = await loop.create_connection(
        lambda: _Connection(request, on_event, done), host, port
    )
    try:
        return await done
    finally:
        transport.close()
