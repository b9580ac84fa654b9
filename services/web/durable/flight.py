"""One lookup in flight per key: concurrent askers share its answer.

A thousand viewers that arrive at once for one stream would otherwise ask
Temporal the same question a thousand times before the first answer is
cached (a describe for the chain's epoch, a query for its tail), and
Temporal refuses the rest ("consistent query buffer is full").
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable


class SingleFlight[T]:
    """``run(key, ask)``: ``ask()`` once for every caller that comes while it runs."""

    def __init__(self) -> None:
        self._flying: dict[Hashable, asyncio.Future[T]] = {}

    async def run(self, key: Hashable, ask: Callable[[], Awaitable[T]]) -> T:
        flying = self._flying.get(key)
        if flying is None:
            flying = asyncio.ensure_future(ask())
            self._flying[key] = flying
            flying.add_done_callback(lambda done: self._landed(key, done))
        # Shielded: one caller that gives up (a client gone) does not cancel the others' answer.
        return await asyncio.shield(flying)

    def _landed(self, key: Hashable, done: asyncio.Future[T]) -> None:
        self._flying.pop(key, None)
        if not done.cancelled():
            done.exception()  # retrieved: every asker may have left before it failed
