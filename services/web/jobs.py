"""The app's background work, supervised: nothing in the web runs as a task nobody watches.

A long-running job (the reaper of idle streams) that crashes is logged with
its traceback and started again after a pause that grows with each crash in
a row; a one-shot job (a publish the dashboard's button asked for) is logged
when it fails or ends. ``close`` cancels and awaits them all.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from services.shared import logs

log = logs.get(__name__)

RESTART_AFTER_S = 1.0
RESTART_CAP_S = 30.0


class Jobs:
    """Named background tasks, each supervised."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.crashes: dict[str, int] = {}  # per job, since the app started

    def keep_running(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        """Run ``job`` until closed; a crash is logged and the job started again."""
        self._tasks[name] = asyncio.create_task(self._supervise(name, job), name=name)

    async def _supervise(self, name: str, job: Callable[[], Awaitable[None]]) -> None:
        in_a_row = 0
        while True:
            try:
                await job()
                return
            except Exception:
                in_a_row += 1
                self.crashes[name] = self.crashes.get(name, 0) + 1
                delay = min(RESTART_CAP_S, RESTART_AFTER_S * 2 ** (in_a_row - 1))
                log.exception("background job crashed; restarting", job=name, in_s=delay)
                await asyncio.sleep(delay)

    def start_once(self, name: str, job: Coroutine[Any, Any, None]) -> bool:
        """Run ``job`` once in the background; False (and ``job`` closed) if ``name`` still runs."""
        if self.running(name):
            job.close()
            return False
        self._tasks[name] = asyncio.create_task(self._once(name, job), name=name)
        return True

    async def _once(self, name: str, job: Coroutine[Any, Any, None]) -> None:
        try:
            await job
        except Exception:
            self.crashes[name] = self.crashes.get(name, 0) + 1
            log.exception("background job failed", job=name)

    def running(self, name: str) -> bool:
        task = self._tasks.get(name)
        return task is not None and not task.done()

    async def close(self) -> None:
        """Cancel every job and wait for each to finish."""
        tasks, self._tasks = list(self._tasks.values()), {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
