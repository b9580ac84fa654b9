"""Wait for a condition, not for a clock: poll it and fail naming what never happened."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, overload


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


@overload
async def eventually[T](
    check: Callable[[], Awaitable[T | None]],
    *,
    what: str,
    within: float = ...,
    interval: float = ...,
) -> T: ...
@overload
async def eventually[T](
    check: Callable[[], T | None], *, what: str, within: float = ..., interval: float = ...
) -> T: ...
async def eventually(
    check: Callable[[], Any], *, what: str, within: float = 60, interval: float = 0.1
) -> Any:
    """Async ``wait_until``: call (and await, if need be) ``check`` until it is truthy."""
    deadline = time.monotonic() + within
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up after {within:.0f} s waiting for {what}")
        await asyncio.sleep(interval)
