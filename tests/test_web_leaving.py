"""Viewers that leave, over real HTTP: one too slow is dropped, one gone mid-burst is let go.

The slow viewer reads off a raw socket whose receive buffer is a few KiB and
whose segments are small (so the server's send buffer, which the kernel
sizes by segments, stays small too): when it stops reading, the server's
writes stall within a few hundred KiB instead of the megabytes loopback
otherwise takes. It reads the hello, stops, and the hub gets more than that
at speed; then more than ``WEB_VIEWER_BUFFER`` events more. When it reads
on, the last thing it gets is ``dropped``, and the server closes the
response. A viewer that keeps up, beside it, gets every event.

A client that resets its connection while the hub publishes in bursts is
logged once, as ``viewer left``, and never as asyncio's ``socket.send()
raised exception.``, which it logs for every write to a connection that is
gone after the fifth.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import AsyncIterator

import h11
import pytest
from structlog.testing import capture_logs
from temporalio.client import Client

from services.shared.models import NEWS_TOPIC
from services.shared.settings import Settings
from services.web.registry import Registry
from services.workflows import HubWorkflow
from testkit.sse import SseEvent, SseParser
from testkit.waiting import eventually
from tests.test_web_support import (
    Web,
    connection,
    publish,
    running_web,
    start_hub,
    until,
    viewer,
)

pytestmark = pytest.mark.usefixtures("worker")

# Sent while the slow viewer reads nothing: 1.2 MB, more than twice what its
# socket, the server's transport and the /events queue (64 frames) took in
# trials (75 and 135 of these events).
STALLED, PAYLOAD = 300, 4000
# More than the stalled burst, so the viewer that keeps up is never dropped;
# fewer than what arrives after it, so the slow one is.
BUFFER = STALLED + 50
AFTER = BUFFER + 10  # tiny ones, in one signal: a burst the fast viewer takes while it waits
TOTAL = STALLED + AFTER + 1  # and the final headline

ROUTES = {
    "streams": (f"/streams/{{}}?topics={NEWS_TOPIC}", NEWS_TOPIC),
    "events": ("/events?follow={}", "item"),
}
# Each leaver meets the catch-up of what came before, and bursts as it reads.
LEAVERS, BURSTS, BURST = 8, 3, 200


@pytest.mark.parametrize("route", ROUTES)
async def test_a_viewer_slower_than_the_stream_ends_with_dropped(
    client: Client, settings: Settings, route: str
) -> None:
    target, item = ROUTES[route]
    hub = await start_hub(client, settings, route)
    fast_events: list[SseEvent] = []
    with capture_logs() as logs:
        async with (
            running_web(client, settings, web_viewer_buffer=BUFFER) as web,
            _slow_viewer(web, target.format(hub.id)) as slow,
        ):
            assert (await anext(slow)).event == "hello"  # read a little; then read nothing
            fast = asyncio.create_task(_read_all(web, route, hub.id, item, fast_events))
            await eventually(lambda: _live_viewers(web) == 2, what="both viewers at the head")
            await publish(client, hub.id, range(STALLED), batch=10, text="x" * PAYLOAD)
            await eventually(lambda: _has(fast, fast_events, STALLED), what="the fast one's burst")
            await publish(client, hub.id, range(STALLED, STALLED + AFTER), batch=AFTER, final=True)
            await eventually(lambda: _has(fast, fast_events, TOTAL), what="the fast one's last")
            # Only now does the slow viewer read on.
            got = await until(slow, lambda seen: seen[-1].event == "dropped" or _final(seen[-1]))
            assert got[-1].event == "dropped", f"never dropped; its last: {got[-2:]}"
            after_dropped = [event async for event in slow]  # returns once the server closed
        await fast
    *sent, dropped = got
    offsets = [_offset(e, route) for e in sent if e.event == item]
    assert after_dropped == []
    behind = TOTAL - len(offsets)
    why = (
        {"behind": behind, "why": "too slow; reconnect with Last-Event-ID"}
        if route == "streams"
        else {"stream": hub.id, "why": f"this connection fell {behind} events behind; reconnect"}
    )
    assert dropped.json() == why
    assert offsets == list(range(len(offsets)))  # what it got, it got in order, and no more
    assert [_offset(e, route) for e in fast_events] == list(range(TOTAL))
    left = [e for e in logs if e["event"] == "viewer dropped: slower than the stream"]
    assert [(e["workflow_id"], e["behind"]) for e in left] == [(hub.id, behind)]
    await hub.signal(HubWorkflow.close)


@pytest.mark.parametrize("route", ROUTES)
async def test_a_client_that_leaves_mid_burst_is_logged_once(
    client: Client, settings: Settings, caplog: pytest.LogCaptureFixture, route: str
) -> None:
    target, _ = ROUTES[route]
    hub = await start_hub(client, settings, route)
    caplog.set_level(logging.WARNING, logger="asyncio")
    with capture_logs() as logs:
        async with running_web(client, settings) as web:
            for leaver in range(LEAVERS):
                # Each reads a little further into the catch-up and the bursts, then resets.
                async with _bursts(client, hub.id, first=leaver * BURSTS * BURST):
                    await _read_then_reset(web, target.format(hub.id), (leaver + 2) * 10_000)
            await eventually(lambda: _live_viewers(web) == 0, what="the web to let them go")
    assert [r.getMessage() for r in caplog.records if r.name == "asyncio"] == []
    left = [e for e in logs if e["event"] == "viewer left"]
    path = target.format(hub.id).partition("?")[0]
    assert [(e["path"], e["client"]) for e in left] == [(path, "127.0.0.1")] * LEAVERS
    await hub.signal(HubWorkflow.close)


# -- the slow viewer --------------------------------------------------------------
@contextlib.asynccontextmanager
async def _slow_viewer(web: Web, target: str) -> AsyncIterator[AsyncIterator[SseEvent]]:
    """GET ``target`` on a socket that holds little; its events, read only when asked for.

    The iterator ends when the server has completed the response and closed
    the connection (the request asks for ``Connection: close``).
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1000)  # small segments: small sends
    sock.setblocking(False)
    try:
        host, port = web.url.removeprefix("http://").split(":")
        await loop.sock_connect(sock, (host, int(port)))
        http = h11.Connection(h11.CLIENT)
        headers = [("Host", f"{host}:{port}"), ("Accept", "text/event-stream")]
        request = h11.Request(
            method="GET", target=target, headers=[*headers, ("Connection", "close")]
        )
        await loop.sock_sendall(sock, http.send(request) + (http.send(h11.EndOfMessage()) or b""))
        yield _sse(sock, http)
    finally:
        sock.close()


async def _sse(sock: socket.socket, http: h11.Connection) -> AsyncIterator[SseEvent]:
    loop = asyncio.get_running_loop()
    parser, text, complete = SseParser(), b"", False
    while True:
        part = http.next_event()
        if part is h11.NEED_DATA:
            http.receive_data(await loop.sock_recv(sock, 4096))
        elif isinstance(part, h11.Response):
            assert part.status_code == 200, part
        elif isinstance(part, h11.Data):
            *lines, text = (text + part.data).split(b"\n")
            for line in lines:
                if (event := parser.line(line.rstrip(b"\r").decode())) is not None:
                    yield event
        elif isinstance(part, h11.EndOfMessage):
            complete = True
        elif isinstance(part, h11.ConnectionClosed):
            assert complete, "the connection closed in the middle of the response"
            return


# -- helpers --------------------------------------------------------------------
async def _read_all(web: Web, route: str, hub_id: str, item: str, got: list[SseEvent]) -> None:
    """Every headline up to the final one into ``got``, by a viewer that keeps up."""
    reading = (
        viewer(web, hub_id, topics=NEWS_TOPIC) if route == "streams" else connection(web, hub_id)
    )
    async with reading as events:
        async for event in events:
            if event.event == item:
                got.append(event)
                if _final(event):
                    return
    raise AssertionError(f"the fast viewer's stream closed after {len(got)} headlines")


def _has(fast: asyncio.Task[None], got: list[SseEvent], count: int) -> bool:
    """Whether the fast viewer has ``count`` headlines (what it met, if it stopped short)."""
    if fast.done() and len(got) < count:
        fast.result()
    return len(got) >= count


@contextlib.asynccontextmanager
async def _bursts(client: Client, hub_id: str, *, first: int) -> AsyncIterator[None]:
    """``BURSTS`` bursts of ``BURST`` headlines from seq ``first``, one signal each."""
    seqs = range(first, first + BURSTS * BURST)
    task = asyncio.create_task(publish(client, hub_id, seqs, batch=BURST, text="y" * 200))
    try:
        yield
    finally:
        task.cancel()  # the leaver has gone: what is left of the bursts is not needed
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _read_then_reset(web: Web, target: str, size: int) -> None:
    """GET ``target``, read ``size`` bytes of the response, then reset the connection."""
    loop = asyncio.get_running_loop()
    host, port = web.url.removeprefix("http://").split(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setblocking(False)
        await loop.sock_connect(sock, (host, int(port)))
        request = f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n"
        await loop.sock_sendall(sock, request.encode())
        got = 0
        while got < size:
            got += len(await loop.sock_recv(sock, 4096))  # a little at a time: writes resume often
        # Linger 0: close() sends a reset, as a browser's tab that is killed does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _live_viewers(web: Web) -> int:
    registry: Registry = web.app.state.registry
    return sum(w.live_viewers for w in registry.windows)


def _final(event: SseEvent) -> bool:
    if event.event not in (NEWS_TOPIC, "item"):
        return False
    data = event.json()
    return bool((data["data"] if event.event == "item" else data)["final"])


def _offset(event: SseEvent, route: str) -> int:
    return event.offset if route == "streams" else int(event.json()["offset"])
