"""Reading a Server-Sent Events stream as a browser's EventSource does: lines in, events out.

One parser for the web tests (over httpx) and the bench's viewers (over raw
sockets), so both read the stream by the same rules.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SseEvent:
    """One dispatched server-sent event."""

    event: str
    data: str
    id: str | None
    retry: int | None

    def json(self) -> Any:
        return json.loads(self.data)

    @property
    def offset(self) -> int:
        """The offset pinned by the id (``<first run id>:<offset>``)."""
        assert self.id is not None, self  # noqa: S101  only events with an id are asked
        return int(self.id.rsplit(":", 1)[1])

    @property
    def chain(self) -> str:
        assert self.id is not None, self  # noqa: S101  only events with an id are asked
        return self.id.rsplit(":", 1)[0]


class SseParser:
    """Feed it the stream's lines (without their line ending); it returns each event as it ends.

    The HTML specification's rules: a blank line dispatches the event if it
    has data, a line starting with ``:`` is a comment (the heartbeat), one
    space after the field's colon is dropped, ``data`` lines are joined by
    newlines. Unlike a browser it does not carry an ``id`` over to the next
    event, so each event shows the id it was sent with, or None.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._event = "message"
        self._data: list[str] = []
        self._id: str | None = None
        self._retry: int | None = None

    def line(self, line: str) -> SseEvent | None:
        if line == "":
            event = None
            if self._data:
                event = SseEvent(self._event, "\n".join(self._data), self._id, self._retry)
            self._reset()
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id":
            self._id = value
        elif name == "retry":
            self._retry = int(value)
        return None
