"""Health for compose healthchecks: a file the service keeps fresh while it is ready.

A service marks itself ready with ``async with ready(path)``: a background
beat touches the file every few seconds and removes it on the way out. The
healthcheck, ``python -m services.shared.health``, passes while the file is
fresh, so a service that hangs, refuses its input or has not started yet is
reported unhealthy by ``make ps``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path

from services.shared.settings import ConfigError, Settings

BEAT_SECONDS = 5.0
STALE_SECONDS = 20.0  # four missed beats


@asynccontextmanager
async def ready(path: Path) -> AsyncIterator[None]:
    """Report healthy for as long as the block runs."""

    async def beat() -> None:
        while True:
            await asyncio.to_thread(path.touch)
            await asyncio.sleep(BEAT_SECONDS)

    task = asyncio.create_task(beat())
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        await asyncio.to_thread(path.unlink, missing_ok=True)


def check(path: Path, *, now: float | None = None) -> str | None:
    """None when healthy, else why not."""
    try:
        age = (time.time() if now is None else now) - path.stat().st_mtime
    except FileNotFoundError:
        return f"not ready: {path} is absent (starting, refusing its input, or stopped)"
    if age > STALE_SECONDS:
        return f"stalled: {path} was last touched {age:.0f} s ago"
    return None


def main() -> int:
    try:
        problem = check(Settings.from_env().health_file)
    except ConfigError as err:
        problem = str(err)
    if problem:
        print(problem, file=sys.stderr)
    return 1 if problem else 0


if __name__ == "__main__":
    sys.exit(main())
