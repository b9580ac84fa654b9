"""A worker that cannot evict a workflow run exits, so that a fresh process frees what it held.

The SDK holds a run in memory until it ends or is evicted from the worker's
cache (``WORKER_MAX_CACHED_WORKFLOWS`` bounds how many). One workflow task
that runs past the SDK's 2 s deadlock timeout can leave the run's tasks
unable to finish: then its eviction fails ("Eviction processed, but 3 tasks
remain"), the SDK retries it forever, and the run stays in memory for good,
a hub with its whole log ("deadlocked many times means
failed-eviction-in-cache-forever from a Python POV", temporalio/sdk-python#530).
The bench saw it after a library-default hub's 2 MB signals: 1 GiB kept,
the hub long terminated. No cache setting bounds that; a restart does, and
the server hands the worker's runs to the next worker that polls.
"""

from __future__ import annotations

import asyncio

from temporalio.worker import Worker

from services.shared import logs
from services.shared.runner import EXIT_FAILED, _exit

log = logs.get(__name__)

CHECK_EVERY_S = 2.0  # the SDK retries a failed eviction every 2 s
# A failed eviction that succeeds on a retry is no leak: wait this many checks.
STUCK_CHECKS = 5


def stuck_evictions(worker: Worker) -> int:
    """Runs the SDK could not evict and still retries; its shutdown warning reads the same count."""
    # No public API tells; these are the counter behind the SDK's own warning
    # "workflow(s) could not be evicted previously, so the shutdown may hang".
    # Typed attributes, so mypy (and tests/test_worker_cache.py) notice a rename.
    workflows = worker._workflow_worker
    return 0 if workflows is None else workflows._could_not_evict_count


async def exit_when_stuck(worker: Worker, service: str) -> None:
    """Return never; exit 1 once ``worker`` has held a run it cannot evict for 10 s.

    Not through a graceful shutdown: the SDK waits for every eviction there,
    so it would hang on the stuck one (it warns that it may).
    """
    checks = 0
    while True:
        await asyncio.sleep(CHECK_EVERY_S)
        stuck = stuck_evictions(worker)
        checks = checks + 1 if stuck else 0
        if checks >= STUCK_CHECKS:
            log.error(
                "exiting: a workflow run cannot be evicted from the cache",
                service=service,
                stuck_runs=stuck,
                why="the SDK would keep it, and all it holds, in memory for good "
                "(temporalio/sdk-python#530); a fresh process starts empty",
                exit_code=EXIT_FAILED,
            )
            _exit(EXIT_FAILED)
