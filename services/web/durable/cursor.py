"""Stream-Cursor: the protocol's time-interval cursor that keeps edge cache keys moving.

A live response carries the current 20-second interval number counted from
2024-10-09 00:00 UTC. A client echoes it as ``cursor=`` on its next
long-poll; when it is already at (or past) the current interval, the answer
moves it strictly forward, so that a cached empty answer can never be
served to the same URL again. The jump is derived from the client's cursor
by a hash instead of a random draw: every viewer that echoes the same cursor
gets the same next one, so their next requests stay identical and the edge
keeps collapsing them into one.
"""

from __future__ import annotations

import hashlib
import math
import time
from datetime import UTC, datetime

INTERVAL_S = 20
EPOCH = datetime(2024, 10, 9, tzinfo=UTC).timestamp()
_MAX_JITTER_S = 3600


def current_interval(now: float | None = None) -> int:
    """The interval number of ``now`` (the wall clock when None)."""
    return int(((time.time() if now is None else now) - EPOCH) // INTERVAL_S)


def next_cursor(echoed: str | None, now: float | None = None) -> str:
    """The cursor for a live response to a request that echoed ``echoed``."""
    interval = current_interval(now)
    try:
        previous = int(echoed) if echoed else -1
    except ValueError:
        previous = -1  # not one of ours: treat it as absent
    if previous < interval:
        return str(interval)
    digest = hashlib.sha256(str(previous).encode()).digest()
    jitter_s = 1 + int.from_bytes(digest[:4], "big") % _MAX_JITTER_S
    return str(previous + math.ceil(jitter_s / INTERVAL_S))
