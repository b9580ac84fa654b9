"""What the two SSE routes share: the response that lets its resources go, and the framing rules."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Annotated, Any

from fastapi import Depends, Header
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.types import Receive, Scope, Send

RETRY_MS = 2000  # how long a browser waits before it reconnects
# A viewer whose socket accepts nothing for this long is let go (it resumes later).
SEND_TIMEOUT_S = 30.0
# Event data a viewer is handed per read of its stream's window.
READ_BYTES = 256 * 1024


class HeldResponse(EventSourceResponse):
    """An SSE response that releases what ``held`` holds however it ends (disconnect, error, end).

    sse-starlette sends ``: heartbeat`` comments every ``ping`` seconds (0: none).
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
        )
        self._held = held

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._held.aclose()


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


def client_address(host: str | None) -> str:
    """Who a per-client limit counts: the peer address (there is no proxy in front to trust)."""
    return host or "unknown"
