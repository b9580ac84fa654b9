"""The per-stream routes: one SSE endpoint per workflow id (for curl and the benchmark), and status.

``GET /streams/{workflow_id}?topics=a,b`` sends each event with
``id: <chain>:<offset>`` (exact across continue-as-new, never shared between
two chains under one id; see ``chain``), ``event: <topic>`` and ``data:
<JSON>``. A reconnect with ``Last-Event-ID`` (or ``?after=`` for clients
that cannot set headers) continues after that event. Besides the topics
there are five control events: ``hello`` (first, with ``retry:``), ``state``
(the upstream connection), ``truncated`` (positions the stream no longer
holds), ``dropped`` (this viewer was too slow; reconnect) and ``end`` (the
chain is closed and drained; do not reconnect). A position past the end of
the log is refused with 400. The dashboard's page uses ``/events`` instead.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from sse_starlette import ServerSentEvent

from services.shared.settings import Settings
from services.web import sse
from services.web.chain import Position, StreamEvent
from services.web.errors import temporal, unavailable
from services.web.registry import Busy, Registry, TooMany, UnknownStream, WrongChain
from services.web.window import BeyondEnd, Dropped, Ended, Gap, Message, State, Window, watch

router = APIRouter()

_MAX_TOPICS, _MAX_TOPIC_CHARS = 32, 200
# A run id is a UUID; the offset a whole number.
_EVENT_ID = re.compile(r"^(?P<chain>[0-9A-Za-z-]{1,64}):(?P<offset>[0-9]{1,15})$")


@router.get("/streams/{workflow_id}", response_model=None)
async def stream_events(
    request: Request,
    workflow_id: str,
    resume: sse.Resume,
    topics: str = "",
) -> sse.HeldResponse:
    """The stream of ``workflow_id``'s latest chain, or of the chain named by the resume id."""
    settings: Settings = request.app.state.settings
    registry: Registry = request.app.state.registry
    try:
        wanted = _topics(topics)
        last = _event_id(*resume) if resume else None
    except ValueError as err:
        raise HTTPException(400, str(err)) from None
    # The position after the last event seen: where the stream goes on.
    position = Position(last.chain, last.offset + 1) if last else None
    held = AsyncExitStack()
    try:
        client = sse.client_of(request)
        held.enter_context(registry.connection(client))
        viewing = registry.viewing(workflow_id, position, client=client)
        window = await temporal(held.enter_async_context(viewing))
        if position is not None:
            # A resume past the end would wait forever for events below it: refuse it now.
            await temporal(window.check(position.offset))
    except BaseException as err:
        await held.aclose()
        raise _refusal(err) from None
    return sse.HeldResponse(
        _events(window, position, wanted, settings), held, ping=settings.web_heartbeat_seconds
    )


def _refusal(err: BaseException) -> BaseException:
    """The HTTP answer for a stream that cannot be opened (other errors pass unchanged)."""
    if isinstance(err, UnknownStream):
        return HTTPException(404, str(err))
    if isinstance(err, BeyondEnd | WrongChain):
        return HTTPException(400, str(err))
    if isinstance(err, TooMany):
        return HTTPException(429, str(err), {"Retry-After": "5"})
    if isinstance(err, Busy):
        return unavailable(str(err))
    return err


@router.get("/api/streams/{workflow_id}")
async def latest_run(request: Request, workflow_id: str) -> dict[str, Any]:
    """Which chain a fresh viewer of ``workflow_id`` would get, and its latest run's status.

    ``chain`` is null while the id has no run: a page polls this to wait for
    one, and a 404 there would be logged as an error by the browser.
    """
    registry: Registry = request.app.state.registry
    run = await temporal(registry.latest(workflow_id))
    if run is None:
        return {"workflow_id": workflow_id, "chain": None, "run_id": None, "status": None}
    status = run.status.name if run.status is not None else None
    return {"workflow_id": workflow_id, "chain": run.chain, "run_id": run.run_id, "status": status}


@router.get("/api/status")
async def status(request: Request) -> dict[str, Any]:
    """The open streams and how many readers each has: what the registry holds now."""
    registry: Registry = request.app.state.registry
    streams = []
    for window in registry.windows:
        events, size = window.retained
        streams.append(
            {
                "workflow_id": window.workflow_id,
                "chain": window.chain,
                "viewers": window.users,
                "live_viewers": window.live_viewers,
                "ended": window.end is not None,
                "retained_events": events,
                "retained_bytes": size,
                **asdict(window.state()),
            }
        )
    return {"viewers": registry.viewers, "streams": streams}


async def _events(
    window: Window, position: Position | None, topics: frozenset[str], settings: Settings
) -> AsyncIterator[ServerSentEvent | bytes]:
    hello = {
        "workflow_id": window.workflow_id,
        "chain": window.chain,
        "resumed_after": position.offset - 1 if position else None,
        "topics": sorted(topics),
        **asdict(window.state()),
    }
    yield ServerSentEvent(sse.json_text(hello), event="hello", retry=sse.RETRY_MS)
    messages = watch(
        window,
        position.offset if position else 0,
        buffer=settings.web_viewer_buffer,
        max_bytes=sse.READ_BYTES,
    )
    async for said in messages:  # one read's messages: one write
        frames = [
            _frame(window.chain, message)
            for message in said
            if not (isinstance(message, StreamEvent) and topics and message.topic not in topics)
        ]
        if frames:
            yield b"".join(frames)


def _frame(chain: str, message: Message) -> bytes:
    if isinstance(message, StreamEvent):
        return _item_frame(chain, message)
    if isinstance(message, Gap):
        # Its id is the last dropped position, so a resume after it goes on past the gap.
        return ServerSentEvent(
            sse.json_text(sse.gap_data(message)),
            id=f"{chain}:{message.to_offset - 1}",
            event="truncated",
        ).encode()
    if isinstance(message, State):
        return ServerSentEvent(sse.json_text(asdict(message)), event="state").encode()
    if isinstance(message, Ended):
        return ServerSentEvent(sse.json_text(asdict(message)), event="end").encode()
    assert isinstance(message, Dropped)  # noqa: S101  the last kind of Message
    why = {"behind": message.behind, "why": "too slow; reconnect with Last-Event-ID"}
    return ServerSentEvent(sse.json_text(why), event="dropped").encode()


@functools.lru_cache(maxsize=256)  # the live events; replays encode again
def _item_frame(chain: str, event: StreamEvent) -> bytes:
    """An event's SSE frame, encoded once for all of its viewers rather than once for each."""
    return ServerSentEvent(event.data, id=f"{chain}:{event.offset}", event=event.topic).encode()


def _event_id(text: str, source: str) -> Position:
    """``<chain>:<offset>`` of the last event seen; ValueError names ``source`` and the form."""
    match = _EVENT_ID.match(text.strip())
    if match is None:
        raise ValueError(
            f"{source} {text!r} is not an event id; use one this server sent, "
            "of the form <first run id>:<offset>, e.g. 01a214a6-7e73-734f-8c4d-68fe7c9b80d9:17"
        )
    return Position(match["chain"], int(match["offset"]))


def _topics(raw: str) -> frozenset[str]:
    topics = frozenset(t.strip() for t in raw.split(",") if t.strip())
    bad = [t for t in topics if len(t) > _MAX_TOPIC_CHARS or not t.isprintable()]
    if bad or len(topics) > _MAX_TOPICS:
        raise ValueError(
            f"topics={raw[:80]!r} is not accepted; use up to {_MAX_TOPICS} comma-separated "
            f"topic names of printable characters, at most {_MAX_TOPIC_CHARS} each"
        )
    return topics
