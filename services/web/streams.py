"""HTTP routes of the streams: one Server-Sent Events endpoint per workflow id.

``GET /streams/{workflow_id}?topics=a,b`` sends each event with
``id: <first run id>:<offset>`` (exact across continue-as-new, never shared
between two runs under one id), ``event: <topic>`` and ``data: <JSON>``. A
reconnect with ``Last-Event-ID`` (or ``?after=`` for clients that cannot set
headers) continues after that event. Besides the topics there are five
control events: ``hello`` (first, with ``retry:``), ``state`` (the upstream
connection), ``truncated`` (positions the stream no longer holds),
``dropped`` (this viewer was too slow; reconnect) and ``end`` (the run is
closed and drained; do not reconnect).
"""

from __future__ import annotations

import functools
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send
from temporalio.service import RPCError, RPCStatusCode

from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS, one_line
from services.shared.settings import Settings
from services.web.chain import Position, StreamEvent, describe
from services.web.fanout import Busy, Fanout, UnknownStream, Viewer
from services.web.stream import Ended, Item, Message, Status, Truncated

log = logs.get(__name__)

router = APIRouter()

RETRY_MS = 2000  # how long a browser waits before it reconnects
RETRY_AFTER_S = "5"  # for a 503: the cap, or Temporal not answering
# A viewer whose socket accepts nothing for this long is let go (it resumes later).
SEND_TIMEOUT_S = 30.0
_MAX_TOPICS, _MAX_TOPIC_CHARS = 32, 200


@router.get("/streams/{workflow_id}", response_model=None)
async def stream_events(
    request: Request,
    workflow_id: str,
    topics: str = "",
    after: str | None = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> EventSourceResponse | JSONResponse:
    """The stream of ``workflow_id``'s latest run, or of the run chain named by the resume id."""
    settings: Settings = request.app.state.settings
    fanout: Fanout = request.app.state.fanout
    try:
        wanted = _topics(topics)
        # The header is the browser's own, newer than a URL it was opened with.
        raw, source = (last_event_id, "Last-Event-ID") if last_event_id else (after, "after")
        position = Position.parse(raw, source=source) if raw else None
    except ValueError as err:
        raise HTTPException(400, str(err)) from None
    try:
        viewer = await fanout.join(workflow_id, position)
    except UnknownStream as err:
        raise HTTPException(404, str(err)) from None
    except Busy as err:
        return _unavailable(str(err))
    except TEMPORAL_ERRORS as err:
        return _unavailable(f"Temporal is not answering: {one_line(err)}")
    log.debug("viewer joined", workflow_id=workflow_id, after=str(position or ""))
    return _ViewerResponse(
        viewer,
        _events(viewer, position, wanted),
        ping=settings.web_heartbeat_seconds,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        headers={"Cache-Control": "no-cache"},
        send_timeout=SEND_TIMEOUT_S,
    )


@router.get("/api/streams/{workflow_id}")
async def latest_run(request: Request, workflow_id: str) -> dict[str, Any]:
    """Which run chain a fresh viewer of ``workflow_id`` would get, and its status.

    ``chain`` is null while the id has no run: a page polls this to wait for
    one, and a 404 there would be logged as an error by the browser.
    """
    try:
        run = await describe(request.app.state.client, workflow_id)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return {"workflow_id": workflow_id, "chain": None, "run_id": None, "status": None}
        raise HTTPException(503, f"Temporal is not answering: {one_line(err)}") from None
    status = run.status.name if run.status is not None else None
    return {"workflow_id": workflow_id, "chain": run.chain, "run_id": run.run_id, "status": status}


@router.get("/api/status")
async def status(request: Request) -> dict[str, Any]:
    """The open streams and how many viewers each has: what the fan-out holds now."""
    fanout: Fanout = request.app.state.fanout
    streams = [
        {
            "workflow_id": s.workflow_id,
            "chain": s.chain,
            "viewers": s.viewers,
            "live_viewers": s.live_viewers,
            "ended": s.ended is not None,
            **asdict(s.status()),
        }
        for s in fanout.streams
    ]
    return {"viewers": fanout.viewers, "streams": streams}


class _ViewerResponse(EventSourceResponse):
    """An SSE response that lets its viewer go however it ends (disconnect, error, end)."""

    def __init__(
        self, viewer: Viewer, content: AsyncIterator[ServerSentEvent | bytes], **kw: Any
    ) -> None:
        super().__init__(content, **kw)
        self._viewer = viewer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._viewer.leave()


async def _events(
    viewer: Viewer, position: Position | None, topics: frozenset[str]
) -> AsyncIterator[ServerSentEvent | bytes]:
    stream = viewer.stream
    hello = {
        "workflow_id": stream.workflow_id,
        "chain": stream.chain,
        "resumed_after": position.offset if position else None,
        "topics": sorted(topics),
        **asdict(stream.status()),
    }
    yield ServerSentEvent(_json(hello), event="hello", retry=RETRY_MS)
    async for message in viewer.messages():
        if isinstance(message, Item) and topics and message.event.topic not in topics:
            continue
        yield _event(stream.chain, message)


def _event(chain: str, message: Message) -> ServerSentEvent | bytes:
    if isinstance(message, Item):
        return _item_frame(chain, message.event)
    if isinstance(message, Truncated):
        gap = {
            "from_offset": message.from_offset,
            "to_offset": message.to_offset,
            "dropped": message.to_offset - message.from_offset,
        }
        # Its id is the last dropped position, so a resume after it goes on past the gap.
        return ServerSentEvent(_json(gap), id=f"{chain}:{message.to_offset - 1}", event="truncated")
    if isinstance(message, Status):
        return ServerSentEvent(_json(asdict(message)), event="state")
    if isinstance(message, Ended):
        return ServerSentEvent(_json(asdict(message)), event="end")
    why = {"behind": message.behind, "why": "too slow; reconnect with Last-Event-ID"}
    return ServerSentEvent(_json(why), event="dropped")


@functools.lru_cache(maxsize=256)  # the live events; replays encode again
def _item_frame(chain: str, event: StreamEvent) -> bytes:
    """An event's SSE frame, encoded once for all of its viewers rather than once for each."""
    return ServerSentEvent(event.data, id=f"{chain}:{event.offset}", event=event.topic).encode()


def _topics(raw: str) -> frozenset[str]:
    topics = frozenset(t.strip() for t in raw.split(",") if t.strip())
    bad = [t for t in topics if len(t) > _MAX_TOPIC_CHARS or not t.isprintable()]
    if bad or len(topics) > _MAX_TOPICS:
        raise ValueError(
            f"topics={raw[:80]!r} is not accepted; use up to {_MAX_TOPICS} comma-separated "
            f"topic names of printable characters, at most {_MAX_TOPIC_CHARS} each"
        )
    return topics


def _unavailable(why: str) -> JSONResponse:
    return JSONResponse({"detail": why}, status_code=503, headers={"Retry-After": RETRY_AFTER_S})


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, separators=(",", ":"))
