"""Wait for a condition, not for a clock: poll it and fail naming what never happened."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


def wait_until[T](
    check: Callable[[], T | None], *, what: str, within: float = 60, interval: float = 0.1
) -> T:
    """Call ``check`` until it returns something truthy; return that."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {within:.0f} s waiting for {what}")
        time.sleep(interval)


async def eventually[T](
    check: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    within: float = 60,
    interval: float = 0.1,
) -> T:
    """Async ``wait_until``: await ``check`` until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
