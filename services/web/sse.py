"""What the two SSE routes share: the response that lets its resources go, and the framing rules."""

from __future__ import annotations

import asyncio
import json
from asyncio.constants import LOG_THRESHOLD_FOR_CONNLOST_WRITES
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Message, Receive, Scope, Send

from services.shared import logs
from services.web.window import Gap

log = logs.get(__name__)

RETRY_MS = 2000  # how long a browser waits before it reconnects
# A viewer whose socket accepts nothing for this long is let go (it resumes later).
SEND_TIMEOUT_S = 30.0
# Event data a viewer is handed per read of its stream's window.
READ_BYTES = 256 * 1024
# Writes in one turn of the event loop: fewer than asyncio's count of writes to a
# lost connection after which it logs a warning for each (see HeldResponse._wrote).
_WRITES_PER_TURN = LOG_THRESHOLD_FOR_CONNLOST_WRITES - 1


class HeldResponse(EventSourceResponse):
    """An SSE response that releases what ``held`` holds however it ends (disconnect, error, end).

    sse-starlette sends ``: heartbeat`` comments every ``ping`` seconds (0: none).
    A client that leaves is logged once, as ``viewer left``.
    """

    def __init__(
        self,
        content: AsyncIterator[ServerSentEvent | bytes],
        held: AsyncExitStack,
        *,
        ping: float,
    ) -> None:
        super().__init__(
            content,
            ping=ping,
            ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
            headers={"Cache-Control": "no-cache"},
            send_timeout=SEND_TIMEOUT_S,
            client_close_handler_callable=self._left,
        )
        self._held = held
        self._who: dict[str, str] = {}
        self._writes = 0  # in this turn of the event loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        peer = scope.get("client")
        self._who = {"path": scope.get("path", ""), "client": peer[0] if peer else "unknown"}

        async def send_in_turns(message: Message) -> None:
            await send(message)
            await self._wrote()

        try:
            await super().__call__(scope, receive, send_in_turns)
        finally:
            await self._held.aclose()

    async def _wrote(self) -> None:
        """Give the loop a turn after a few writes, so that a client that left stops them.

        A write to a peer that has gone fails inside asyncio's transport, which
        tells uvicorn only on the loop's next turn; until then uvicorn keeps
        writing, and from the fifth such write on, asyncio logs
        ``socket.send() raised exception.`` for each. A burst (a catch-up, a
        batch of events) writes many frames in one turn: at most one fewer
        than that, then the turn is taken.
        """
        self._writes += 1
        if self._writes == 1:
            asyncio.get_running_loop().call_soon(self._new_turn)
        elif self._writes >= _WRITES_PER_TURN:
            await asyncio.sleep(0)

    def _new_turn(self) -> None:
        self._writes = 0

    async def _left(self, _: Message) -> None:
        log.info("viewer left", **self._who)


def resume_id(
    after: str | None = None, last_event_id: Annotated[str | None, Header()] = None
) -> tuple[str, str] | None:
    """The resume id a client sent, and where; the header (the browser's own) wins."""
    if last_event_id:
        return last_event_id, "Last-Event-ID"
    return (after, "after") if after else None


Resume = Annotated[tuple[str, str] | None, Depends(resume_id)]


def json_text(value: dict[str, Any]) -> str:
    """Compact JSON, as every control event's data."""
    return json.dumps(value, separators=(",", ":"))


def client_of(request: Request) -> str:
    """Who a per-client limit counts: the peer address (there is no proxy in front to trust)."""
    return request.client.host if request.client else "unknown"


def gap_data(gap: Gap) -> dict[str, int]:
    """A ``truncated`` event's data: which offsets are gone, and how many."""
    return {
        "from_offset": gap.from_offset,
        "to_offset": gap.to_offset,
        "dropped": gap.to_offset - gap.from_offset,
    }
