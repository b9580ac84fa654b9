"""A lean Durable Streams reader for the bench: long-polls, one after another, on one socket.

What a protocol client does (docs/durable-streams.md): a catch-up read from
the start (``offset=-1``), then ``live=long-poll`` from each answer's
``Stream-Next-Offset``, echoing its ``Stream-Cursor``; a 204 (nothing came
within the timeout) asks again from the same offset. Like
``bench.eventsource`` it reads the raw socket in an :class:`asyncio.Protocol`,
so that ten thousand of these cost the machine as little as they can; every
request goes on one kept-alive HTTP/1.1 connection, and on a new one when
the server closes it between answers (nginx does after ``keepalive_requests``).
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from bench.http1 import split_head

# Called with each answer's messages; True ends the reading.
OnMessages = Callable[[list[dict[str, Any]]], bool]


class _Reader:
    """Where a reader stands: the next offset, the cursor to echo, requests sent so far."""

    def __init__(
        self, host: str, port: int, path: str, on_messages: OnMessages, on_live: Callable[[], None]
    ) -> None:
        self.address = (host, port)
        self.on_live = on_live
        self._prefix = f"GET {path}?offset="
        self._host = f"Host: {host}:{port}\r\n"
        self.on_messages = on_messages
        self.offset = "-1"
        self.cursor: str | None = None
        self.live = False
        self.polls = 0  # long-polls sent (the catch-up read is not one)
        self.answers = 0

    def request(self) -> bytes:
        query = quote(self.offset, safe="")
        if self.live:
            self.polls += 1
            query += "&live=long-poll"
            if self.cursor is not None:
                query += f"&cursor={quote(self.cursor, safe='')}"
        head = f"{self._prefix}{query} HTTP/1.1\r\n{self._host}Accept: application/json\r\n\r\n"
        return head.encode()


class _Connection(asyncio.Protocol):
    """One kept-alive connection: a response, then the next request, until done or closed."""

    def __init__(self, reader: _Reader, ended: asyncio.Future[str]) -> None:
        self._reader = reader
        self._ended = ended  # "" when done; why, when it stopped; "closed" to reconnect
        self._transport: asyncio.Transport | None = None
        self._raw = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # noqa: S101  a TCP connection is one
        self._transport = transport
        transport.write(self._reader.request())

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection lost: {exc}" if exc else "closed")

    def data_received(self, data: bytes) -> None:
        self._raw += data
        while not self._ended.done():
            split = split_head(self._raw)
            if split is None:
                return
            head, rest = split
            length = int(head.headers.get("content-length", "0"))
            if head.status not in (200, 204):
                start = " ".join(rest[:160].decode(errors="replace").split())  # one line
                self._end(f"HTTP {head.status} {head.reason}: {start}")
                return
            if head.status == 200 and "content-length" not in head.headers:
                self._end(f"expected a Content-Length, got headers {head.headers}")
                return
            if len(rest) < length:
                return  # the rest of the body is still on its way
            body, self._raw = rest[:length], rest[length:]
            if self._answer(head.status, head.headers, body):
                return

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> bool:
        """Take one answer in; True once no further request goes on this connection."""
        reader = self._reader
        reader.answers += 1
        reader.offset = headers.get("stream-next-offset", reader.offset)
        reader.cursor = headers.get("stream-cursor", reader.cursor)
        if status == 200 and reader.on_messages(json.loads(body)):
            self._end("")
            return True
        if headers.get("stream-closed") == "true":
            self._end("the stream closed before the final event")
            return True
        if not reader.live:
            reader.live = True
            reader.on_live()
        if headers.get("connection", "").lower() == "close":
            self._end("closed")  # the next request goes on a new connection
            return True
        if self._transport is not None:
            self._transport.write(reader.request())
        return False

    def _end(self, why: str) -> None:
        if not self._ended.done():
            self._ended.set_result(why)
        if self._transport is not None:
            self._transport.close()


async def read(url: str, on_messages: OnMessages, on_live: Callable[[], None]) -> tuple[str, int]:
    """Read the stream at ``url`` (``.../v1/streams/ID``) until ``on_messages`` returns True.

    ``on_live`` is called once, when the catch-up read has answered (the
    first long-poll goes out next). Returns ("" or why it stopped, long-polls sent).
    Raises OSError if it cannot connect.
    """
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    reader = _Reader(host, port, parts.path, on_messages, on_live)
    loop = asyncio.get_running_loop()
    while True:
        answered = reader.answers
        ended: asyncio.Future[str] = loop.create_future()
        transport, _ = await loop.create_connection(
            functools.partial(_Connection, reader, ended), *reader.address
        )
        try:
            why = await ended
        finally:
            transport.close()
        if why != "closed":
            return why, reader.polls
        if reader.answers == answered:  # closed before answering anything: do not spin
            return "the server closed the connection without an answer", reader.polls
