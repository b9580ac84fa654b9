"""worker: runs every scenario's workflows and the payment activity.

Scale it with ``docker compose up --scale worker=3``: workers share the task
queue. SIGTERM drains: running activities get ``graceful_shutdown_timeout``
to finish before the worker stops.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client
from temporalio.worker import Worker

from services.activities import charge_card
from services.shared import health, logs
from services.shared.connect import connect
from services.shared.evictions import exit_when_stuck
from services.shared.runner import run_service
from services.shared.settings import Settings
from services.workflows import ALL

log = logs.get(__name__)


def build_worker(
    client: Client,
    task_queue: str,
    *,
    max_cached_workflows: int = Settings().worker_max_cached_workflows,
) -> Worker:
    """The worker with everything registered; tests build theirs the same way."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=ALL,
        activities=[charge_card],
        graceful_shutdown_timeout=timedelta(seconds=10),
        # Each cached run keeps its state in this process (a hub: its whole
        # log since the last rollover) until it ends or is evicted; past this
        # many the least recently used is evicted and replayed from history
        # on its next task. The SDK's default, 1000, would keep a thousand idle hubs' logs.
        max_cached_workflows=max_cached_workflows,
    )


async def main(settings: Settings) -> None:
    client = await connect(settings)
    worker = build_worker(
        client, settings.task_queue, max_cached_workflows=settings.worker_max_cached_workflows
    )
    async with worker, health.ready(settings.health_file):
        log.info(
            "worker ready",
            task_queue=settings.task_queue,
            workflows=[w.__name__ for w in ALL],
            activities=[charge_card.__name__],
            max_cached_workflows=settings.worker_max_cached_workflows,
        )
        # Runs until SIGTERM cancels us; leaving the block drains the worker.
        await exit_when_stuck(worker, "worker")


if __name__ == "__main__":
    run_service("worker", main, one_shot=False)
