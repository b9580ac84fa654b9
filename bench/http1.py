"""The head of an HTTP/1.1 response, taken apart: shared by the bench's lean clients.

``bench.eventsource`` (one Server-Sent Events response per connection) and
``bench.longpoll`` (a long-poll after another on one kept-alive connection)
read raw sockets so that a thousand viewers cost the machine little; both
start each response the same way.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Head:
    """A response's status line and headers (names in lower case)."""

    status: int
    reason: str
    headers: dict[str, str]


def split_head(raw: bytes) -> tuple[Head, bytes] | None:
    """The head at the start of ``raw`` and what follows it; None while it is incomplete."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        return None
    status_line, *lines = raw[:end].decode("latin-1").split("\r\n")
    _, status, *reason = status_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Head(int(status), " ".join(reason), headers), raw[end + 4 :]
