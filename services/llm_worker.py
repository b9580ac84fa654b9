"""llm-worker: answers scenario 5's questions (the conversation workflow and the model).

It runs on its own task queue (LLM_TASK_QUEUE), so `make chaos-llm` can kill
it mid-answer without touching the other scenarios. With LLM_BASE_URL unset
the built-in offline model answers; see docs/assistant.md.
"""

from __future__ import annotations

from services.llm.worker import build_llm_worker
from services.shared import health, logs
from services.shared.connect import connect
from services.shared.conversation import model_label
from services.shared.evictions import exit_when_stuck
from services.shared.runner import run_service
from services.shared.settings import Settings

log = logs.get(__name__)


async def main(settings: Settings) -> None:
    client = await connect(settings)
    worker = build_llm_worker(client, settings)
    async with worker, health.ready(settings.health_file):
        log.info(
            "llm-worker ready",
            task_queue=settings.llm_task_queue,
            model=model_label(settings),
            heartbeat_timeout_s=settings.llm_heartbeat_timeout_seconds,
            turns_per_run=settings.llm_turns_per_run,
        )
        # Runs until SIGTERM cancels us; leaving the block drains the worker.
        await exit_when_stuck(worker, "llm-worker")


if __name__ == "__main__":
    run_service("llm-worker", main, one_shot=False)
