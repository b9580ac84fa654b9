"""``GET /events``: one connection per page, carrying every panel's stream (contract B).

A browser keeps at most six HTTP/1.1 connections per host; a page holding
one per panel leaves room for one more tab. So the page opens one
EventSource: ``/events?follow=<workflow id>&follow=...`` (up to 16), and
every SSE event carries ``id: <token>``, an opaque URL-safe resume token
covering every followed stream's position (see ``tokens``). A reconnect
sends it back as ``Last-Event-ID`` (or ``?after=``) and each stream goes on
where it was. Each followed id is followed across its runs: waiting while it
has none, ``end`` when a chain ends, then ``chain`` when its next run starts.

Events (data is JSON; ``stream`` is the workflow id):
``hello`` {"streams": {id: {"state", "chain", "run_id", "resumed_after"}}} first, with ``retry:``;
``chain`` {"stream", "chain", "run_id"}; ``item`` {"stream", "chain", "offset", "topic", "data"};
``state`` {"stream", "state", "run_id", "detail"}; ``truncated`` {"stream", "from_offset",
"to_offset", "dropped"}; ``end`` {"stream", "status", "next_offset", "detail"};
``dropped`` {"stream", "why"} (too slow; the browser reconnects with the token) and
``refused`` {"stream", "why"} (a position beyond the log's end, say; the stream starts over).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from sse_starlette import ServerSentEvent

from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS
from services.shared.settings import Settings
from services.web import sse, tokens
from services.web.chain import Position, Run, StreamEvent
from services.web.errors import not_answering, temporal_answer, unavailable
from services.web.registry import Busy, Registry, TooMany, UnknownStream, WrongChain
from services.web.window import BeyondEnd, Dropped, Ended, Gap, State, Window, watch

log = logs.get(__name__)

router = APIRouter()

MAX_FOLLOWS = 16
_MAX_ID_CHARS = 1000  # Temporal's default limit on a workflow id
# How often a stream with no run (or whose chain ended) looks for the next one.
WATCH_S = 1.0
# After a refusal (a cap, Temporal's answer) a stream tries again this much later.
RETRY_S = 5.0
# The hello waits this long for each stream to be looked up; later ones follow as events.
HELLO_WAIT_S = 5.0
# Frames waiting for the socket; when full, the streams' readers wait (and fall behind).
_QUEUE = 64


@router.get("/events", response_model=None)
async def events(
    request: Request,
    resume: sse.Resume,
    follow: Annotated[list[str], Query()] = [],  # noqa: B006  FastAPI copies the default
) -> sse.HeldResponse:
    """Every followed stream on one SSE connection, resumable by one token."""
    settings: Settings = request.app.state.settings
    registry: Registry = request.app.state.registry
    try:
        follows = _follows(follow)
        positions = tokens.decode(*resume) if resume else {}
    except ValueError as err:
        raise HTTPException(400, str(err)) from None
    client = sse.client_of(request)
    held = AsyncExitStack()
    try:
        held.enter_context(registry.connection(client))
    except TooMany as err:
        raise HTTPException(429, str(err), {"Retry-After": "5"}) from None
    except Busy as err:
        raise unavailable(str(err)) from None
    start = {wid: positions.get(tokens.key(wid)) for wid in follows}
    connection = _Connection(registry, settings, client, start)
    return sse.HeldResponse(connection.frames(), held, ping=settings.web_heartbeat_seconds)


def _follows(raw: list[str]) -> list[str]:
    follows = list(dict.fromkeys(raw))  # in order, once each
    bad = [f[:80] for f in follows if not f or len(f) > _MAX_ID_CHARS or not f.isprintable()]
    if not follows or len(follows) > MAX_FOLLOWS or bad:
        raise ValueError(
            f"follow={raw[:3]!r}{'...' if len(raw) > 3 else ''} is not accepted "
            f"({'; '.join(repr(b) for b in bad) or f'{len(follows)} ids'}); give 1 to "
            f"{MAX_FOLLOWS} follow=<workflow id> parameters, each of printable characters, "
            f"at most {_MAX_ID_CHARS}"
        )
    return follows


@dataclass(frozen=True)
class _Frame:
    """One event for the socket; ``position`` is its stream's position once it is sent."""

    stream: str
    event: str
    data: str
    position: Position | None
    moves: bool  # whether ``position`` replaces the stream's position (None: no position)
    final: bool = False  # the connection ends after it


class _Stop(Exception):
    """This connection ends (dropped, or the server is stopping)."""


class _Connection:
    """One page's connection: a reader task per followed stream, one queue to the socket."""

    def __init__(
        self,
        registry: Registry,
        settings: Settings,
        client: str,
        start: dict[str, Position | None],
    ) -> None:
        self._registry = registry
        self._settings = settings
        self._client = client
        self._start = start
        self._sent = dict(start)  # each stream's position as of the last frame sent
        self._queue: asyncio.Queue[_Frame] = asyncio.Queue(maxsize=_QUEUE)
        loop = asyncio.get_running_loop()
        self._first: dict[str, asyncio.Future[dict[str, Any]]] = {
            wid: loop.create_future() for wid in start
        }
        self._hello_sent = False

    async def frames(self) -> AsyncIterator[ServerSentEvent | bytes]:
        """The hello, then every stream's frames in the order they are ready."""
        readers = [
            asyncio.create_task(self._follow(wid), name=f"events {wid}") for wid in self._start
        ]
        try:
            await asyncio.wait(self._first.values(), timeout=HELLO_WAIT_S)
            yield self._hello()
            while True:
                chunk, final = self._written(await self._queue.get())
                yield chunk
                if final:
                    return
        finally:
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)

    def _written(self, frame: _Frame) -> tuple[bytes, bool]:
        """``frame`` and every frame queued behind it, as one write; whether the last is final."""
        parts = []
        while True:
            if frame.moves:
                self._sent[frame.stream] = frame.position
            event = ServerSentEvent(frame.data, event=frame.event, id=tokens.encode(self._sent))
            parts.append(event.encode())
            if frame.final or self._queue.empty():
                return b"".join(parts), frame.final
            frame = self._queue.get_nowait()

    def _hello(self) -> ServerSentEvent:
        self._hello_sent = True  # no await from the check below to here: see _resolved
        streams = {}
        for wid, first in self._first.items():
            if first.done():
                streams[wid] = first.result()
            else:
                streams[wid] = {"state": "reconnecting", "chain": None, "run_id": None}
            position = self._start[wid]
            resumed = position.offset - 1 if position is not None and position.offset else None
            streams[wid]["resumed_after"] = resumed
        body = sse.json_text({"streams": streams})
        return ServerSentEvent(
            body, event="hello", id=tokens.encode(self._sent), retry=sse.RETRY_MS
        )

    # -- one followed stream --------------------------------------------------------
    async def _follow(self, wid: str) -> None:
        """Follow ``wid`` across its chains, forever (until the connection ends)."""
        position = self._start[wid]
        try:
            while True:
                if position is None:
                    run = await self._next_run(wid, after_chain=None)
                    position = await self._begin(wid, run)
                reached = await self._stream(wid, position)
                if reached is None:  # refused: start over at the latest chain
                    run = await self._next_run(wid, after_chain=None)
                else:
                    run = await self._next_run(wid, after_chain=reached.chain)
                position = await self._begin(wid, run)
        except _Stop:
            return
        except Exception:  # a bug: this stream stops, the others go on
            log.exception("following a stream crashed", workflow_id=wid)
            state = {"state": "failed", "run_id": None, "detail": "internal error; see the log"}
            await self._emit(wid, "state", state)

    async def _begin(self, wid: str, run: Run) -> Position:
        """A chain starts: the hello says so if it is not sent yet, else a ``chain`` event."""
        position = Position(run.chain, 0)
        if not self._resolved(wid, _run_state(run), run.chain, run.run_id):
            data = {"chain": run.chain, "run_id": run.run_id}
            await self._emit(wid, "chain", data, position=position)
        return position

    def _resolved(self, wid: str, state: str, chain: str | None, run_id: str | None) -> bool:
        """Give the hello this stream's state; False once the hello has gone without it."""
        first = self._first[wid]
        if first.done():
            return False
        if self._hello_sent:
            first.cancel()
            return False
        first.set_result({"state": state, "chain": chain, "run_id": run_id})
        return True

    async def _next_run(self, wid: str, *, after_chain: str | None) -> Run:
        """The id's latest run once it is of a chain other than ``after_chain``."""
        told: str | None = None
        while True:
            try:
                run = await self._registry.latest(wid)
            except TEMPORAL_ERRORS as err:
                told = await self._fault(wid, err, told)
                continue
            if run is not None and run.chain != after_chain:
                return run
            if after_chain is None and told != "waiting":
                told = "waiting"
                if not self._resolved(wid, "waiting", None, None):
                    data = {"state": "waiting", "run_id": None, "detail": "no run yet"}
                    await self._emit(wid, "state", data)
            await asyncio.sleep(WATCH_S)

    async def _stream(self, wid: str, position: Position) -> Position | None:
        """Send the chain from ``position`` to its end; the position there, or None if refused."""
        told: str | None = None
        while True:
            try:
                async with self._registry.viewing(wid, position, client=self._client) as window:
                    await window.check(position.offset)
                    told = None
                    state = "ended" if window.end else window.state().state
                    self._resolved(wid, state, window.chain, window.run.run_id)
                    position, ended = await self._watch(wid, window, position)
                    if ended:
                        return position
            except UnknownStream as err:
                self._resolved(wid, "ended", position.chain, None)  # a `chain` event follows
                gone = {"status": "GONE", "next_offset": position.offset, "detail": str(err)}
                await self._emit(wid, "end", gone)
                return position
            except (BeyondEnd, WrongChain) as err:
                self._resolved(wid, "reconnecting", position.chain, None)  # a `chain` follows
                await self._emit(wid, "refused", {"why": f"{err}; starting over"}, position=None)
                return None
            except (Busy, TooMany) as err:
                if told != str(err):
                    told = str(err)
                    await self._emit(wid, "refused", {"why": f"{err}; trying again"})
                await asyncio.sleep(RETRY_S)
            except TEMPORAL_ERRORS as err:
                answer = temporal_answer(err)
                if answer is not None and answer.status_code == 400:  # e.g. not a run id
                    self._resolved(wid, "reconnecting", position.chain, None)
                    await self._emit(wid, "refused", {"why": answer.detail}, position=None)
                    return None
                told = await self._fault(wid, err, told)

    async def _watch(self, wid: str, window: Window, position: Position) -> tuple[Position, bool]:
        """Relay one viewer of ``window``; (the position reached, whether the chain ended)."""
        chain = window.chain
        buffer, offset = self._settings.web_viewer_buffer, position.offset
        async for said in watch(window, offset, buffer=buffer, max_bytes=sse.READ_BYTES):
            for message in said:
                if isinstance(message, StreamEvent):
                    position = Position(chain, message.offset + 1)
                    await self._queue.put(_item(wid, chain, message, position))
                elif isinstance(message, Gap):
                    position = Position(chain, message.to_offset)
                    await self._emit(wid, "truncated", sse.gap_data(message), position=position)
                elif isinstance(message, State):
                    final = message.state == "closing"
                    data = {
                        "state": message.state,
                        "run_id": message.run_id,
                        "detail": message.detail,
                    }
                    await self._emit(wid, "state", data, final=final)
                    if final:
                        raise _Stop
                elif isinstance(message, Ended):
                    position = Position(chain, message.next_offset)
                    end = {"status": message.status, "next_offset": message.next_offset}
                    await self._emit(
                        wid, "end", {**end, "detail": message.detail}, position=position
                    )
                    return position, True
                elif isinstance(message, Dropped):
                    why = f"this connection fell {message.behind} events behind; reconnect"
                    await self._emit(wid, "dropped", {"why": why}, final=True)
                    raise _Stop
        # The upstream failed: the registry forgets a failed window, so a fresh one starts.
        await asyncio.sleep(RETRY_S)
        return position, False

    async def _fault(self, wid: str, err: BaseException, told: str | None) -> str:
        """Say (once) that Temporal did not answer or refused, then wait before trying again."""
        answer = temporal_answer(err)
        if answer is None:
            raise err  # not Temporal's: a bug
        state = "reconnecting" if not_answering(err) else "failed"
        if told != state:
            await self._emit(
                wid, "state", {"state": state, "run_id": None, "detail": answer.detail}
            )
        await asyncio.sleep(WATCH_S if state == "reconnecting" else RETRY_S)
        return state

    async def _emit(
        self,
        wid: str,
        event: str,
        data: dict[str, Any],
        *,
        position: Position | None = None,
        final: bool = False,
    ) -> None:
        moves = position is not None or event == "refused"
        body = sse.json_text({"stream": wid, **data})
        await self._queue.put(_Frame(wid, event, body, position, moves, final))


def _run_state(run: Run) -> str:
    running = run.status is None or run.status.name == "RUNNING"
    return "live" if running else "ended"


def _item(wid: str, chain: str, event: StreamEvent, position: Position) -> _Frame:
    return _Frame(wid, "item", _item_data(wid, chain, event), position, True)


@functools.lru_cache(maxsize=1024)  # one event goes to every connection following it
def _item_data(wid: str, chain: str, event: StreamEvent) -> str:
    """An item's data, with the event's JSON text spliced in as it is (it is valid JSON)."""
    head = sse.json_text(
        {"stream": wid, "chain": chain, "offset": event.offset, "topic": event.topic}
    )
    return f'{head[:-1]},"data":{event.data}}}'
