"""``GET /v1/streams/{workflow_id}``: a workflow's stream under the Durable Streams read protocol.

One URL per workflow id; the stream at it is the id's latest continue-as-new
chain (the chain an offset names, for a resume). Reads: catch-up (no
``live``), ``live=long-poll`` (204 when nothing came within the timeout) and
``live=sse`` (``data`` and ``control`` events, closed by the server after
about a minute). JSON mode: every body is a JSON array of messages
``{"offset": <int>, "topic": <str>, "data": <the event's JSON>}``. A chain
that has ended is a closed stream (``Stream-Closed: true``). Offsets are
described in :mod:`services.web.durable.offsets`; the cache headers, which let
an edge cache catch-up ranges and collapse identical long-polls, in
docs/durable-streams.md. Writes stay with the dashboard's POST routes.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import QueryParams

from services.shared import logs
from services.shared.settings import Settings
from services.web.chain import StreamEvent
from services.web.durable import cursor as cursors
from services.web.durable.offsets import BadOffset, Offset, Sentinel, parse
from services.web.durable.source import Chunk, Gone, NoSuchStream, Refused, Source, Unavailable

log = logs.get(__name__)

router = APIRouter()

LONG_POLL_S = 20.0  # a long-poll with nothing new answers 204 after this
# The most a client may ask for with ``timeout=``; the edge's read timeout (35 s)
# is just above it, so a replica killed mid-poll costs a reader at most that.
MAX_TIMEOUT_S = 30.0
SSE_SECONDS = 60.0  # the server closes an SSE read after this, so edges can collapse anew
MAX_BYTES = 256 * 1024  # event data per response
RETRY_AFTER_S = "5"
CONTENT_TYPE = "application/json"
_MODES = ("long-poll", "sse")

# Data at an offset this server issued never changes: an edge keeps it.
IMMUTABLE = "public, max-age=60, stale-while-revalidate=300"
# offset=-1 names the start of the *latest* chain, and truncation moves it: briefly.
FROM_START = "public, max-age=5"
NO_STORE = "no-store"
# (nosniff and the other security headers come from the app's guard, on every response.)
_SAFE = {
    "Cross-Origin-Resource-Policy": "cross-origin",
    # Which replica answered (its container's hostname): failovers are visible from outside.
    "X-Served-By": socket.gethostname(),
}


@router.api_route("/v1/streams/{workflow_id}", methods=["GET", "HEAD"], response_model=None)
async def read_stream(request: Request, workflow_id: str) -> Response:
    """One read of ``workflow_id``'s stream; the query says from where and how."""
    try:
        start, live, echoed, wait = _parameters(request.query_params)
    except BadOffset as err:
        return _error(400, str(err))
    except ValueError as err:
        return _error(400, str(err))
    source = _source(request)
    head = request.method == "HEAD"
    try:
        if head or (start is Sentinel.NOW and live is None):
            chunk = await source.read(workflow_id, Sentinel.NOW, wait=0, max_bytes=MAX_BYTES)
            return _tail(chunk, head=head)
        if live == "sse":
            first = await source.read(workflow_id, start, wait=0, max_bytes=MAX_BYTES)
            return _sse(request, source, workflow_id, first, echoed)
        chunk = await source.read(workflow_id, start, wait=wait if live else 0, max_bytes=MAX_BYTES)
    except NoSuchStream as err:
        return _error(404, str(err))
    except Refused as err:
        return _error(400, str(err))
    except Gone as err:
        earliest = err.earliest.token() if err.earliest else None
        return _error(410, str(err), earliest_offset=earliest)
    except Unavailable as err:
        return _error(503, str(err), headers={"Retry-After": RETRY_AFTER_S})
    if live and not chunk.events:
        return _no_content(chunk, cursors.next_cursor(echoed))
    return _data(request, chunk, start, cursor=cursors.next_cursor(echoed) if live else None)


def _parameters(query: QueryParams) -> tuple[Sentinel | Offset, str | None, str | None, float]:
    """offset, live, cursor and timeout; ValueError names the one that is wrong."""
    start = parse(query.get("offset", Sentinel.START.value))
    live = query.get("live") or None
    if live is not None and live not in _MODES:
        raise ValueError(
            f"live={live[:40]!r} is not accepted; use live=long-poll or live=sse, "
            "or leave it out for a catch-up read"
        )
    raw = query.get("timeout")
    wait = LONG_POLL_S
    if raw is not None:
        try:
            wait = float(raw)
        except ValueError:
            wait = -1.0
        if not 0 < wait <= MAX_TIMEOUT_S:
            raise ValueError(
                f"timeout={raw[:40]!r} is not accepted; use seconds, more than 0 and at most "
                f"{MAX_TIMEOUT_S:.0f} (the default is {LONG_POLL_S:.0f})"
            )
    return start, live, query.get("cursor"), wait


def _source(request: Request) -> Source:
    state = request.app.state
    if getattr(state, "durable_source", None) is None:
        state.durable_source = Source(state.client, state.registry)
    source: Source = state.durable_source
    return source


def _body(events: list[StreamEvent]) -> str:
    """The JSON-mode body: one message per event, its data as published (not re-encoded)."""
    messages = (
        f'{{"offset":{e.offset},"topic":{json.dumps(e.topic)},"data":{e.data}}}' for e in events
    )
    return "[" + ",".join(messages) + "]"


def _headers(chunk: Chunk, cache: str, cursor: str | None = None) -> dict[str, str]:
    headers = {**_SAFE, "Stream-Next-Offset": chunk.next.token(), "Cache-Control": cache}
    if chunk.up_to_date or chunk.closed:
        headers["Stream-Up-To-Date"] = "true"
    if chunk.closed:
        headers["Stream-Closed"] = "true"
    if cursor is not None:
        headers["Stream-Cursor"] = cursor
    return headers


def _data(request: Request, chunk: Chunk, start: Sentinel | Offset, cursor: str | None) -> Response:
    if chunk.events or chunk.closed:
        cache = FROM_START if start is Sentinel.START else IMMUTABLE
    else:
        cache = NO_STORE  # the tail of an open stream: the next answer will differ
    # Varies with the range and with closure, so a 304 never hides the end of a stream.
    closed = ":c" if chunk.closed else ""
    etag = f'"{chunk.start.chain}:{chunk.start.offset}:{chunk.next.offset}{closed}"'
    headers = {**_headers(chunk, cache, cursor), "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(_body(chunk.events), media_type=CONTENT_TYPE, headers=headers)


def _no_content(chunk: Chunk, cursor: str) -> Response:
    # Not cached (the protocol asks edges not to keep a 204); the cursor moves on regardless.
    return Response(status_code=204, headers=_headers(chunk, NO_STORE, cursor))


def _tail(chunk: Chunk, *, head: bool) -> Response:
    """offset=now without live, and HEAD: where the stream ends now, no data, not cached."""
    headers = _headers(chunk, NO_STORE)
    headers["Stream-Up-To-Date"] = "true"
    if head:
        return Response(status_code=200, media_type=CONTENT_TYPE, headers=headers)
    return Response("[]", media_type=CONTENT_TYPE, headers=headers)


def _sse(
    request: Request, source: Source, workflow_id: str, first: Chunk, echoed: str | None
) -> EventSourceResponse:
    settings: Settings = request.app.state.settings
    return EventSourceResponse(
        _frames(source, workflow_id, first, echoed, heartbeat=settings.web_heartbeat_seconds),
        ping=settings.web_heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        headers={**_SAFE, "Cache-Control": NO_STORE},
    )


async def _frames(
    source: Source, workflow_id: str, chunk: Chunk, echoed: str | None, *, heartbeat: float
) -> AsyncIterator[ServerSentEvent]:
    """``data`` then ``control`` per read, until the stream closes or about a minute passes.

    A fault ends the response; the client reconnects from its last
    ``streamNextOffset`` and is then told (410, 503) by status code.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SSE_SECONDS
    cursor = echoed
    first = True
    while True:
        if chunk.events:
            yield ServerSentEvent(_body(chunk.events), event="data")
        if chunk.events or chunk.closed or first:
            cursor = cursors.next_cursor(cursor)
            yield ServerSentEvent(json.dumps(_control(chunk, cursor)), event="control")
        if chunk.closed:
            return
        first = False
        remaining = deadline - loop.time()
        if remaining <= 0:
            return
        try:
            chunk = await source.read(
                workflow_id, chunk.next, wait=min(remaining, heartbeat), max_bytes=MAX_BYTES
            )
        except (Gone, Refused, NoSuchStream, Unavailable) as err:
            log.info("protocol SSE read ended", workflow_id=workflow_id, why=str(err))
            return


def _control(chunk: Chunk, cursor: str) -> dict[str, object]:
    control: dict[str, object] = {"streamNextOffset": chunk.next.token()}
    if chunk.closed:
        control.update(streamClosed=True, upToDate=True)
        return control
    control["streamCursor"] = cursor
    if chunk.up_to_date:
        control["upToDate"] = True
    return control


def _error(
    status: int, why: str, *, headers: dict[str, str] | None = None, **extra: str | None
) -> JSONResponse:
    body = {"detail": why, **{k: v for k, v in extra.items() if v is not None}}
    return JSONResponse(
        body, status_code=status, headers={**_SAFE, "Cache-Control": NO_STORE, **(headers or {})}
    )
