"""publisher: scenario 3, plain code publishing into a passive hub workflow.

Starts a hub, then, side by side in one task group, publishes headlines and
reads them back (``services.shared.headlines``: bounded batches, and flow
control through the hub's ``applied`` update, where the hub also holds it
while it rolls over). The stream ends with an in-band final event; then the
hub is told to ``close``. Exits 0 once the reader has every headline, in
order, exactly once; if the reader fails first, publishing stops at once and
the service exits 1.
"""

from __future__ import annotations

import asyncio
import uuid

from temporalio.client import Client

from services.shared import logs
from services.shared.connect import connect
from services.shared.headlines import Progress, publish_headlines, read_headlines
from services.shared.models import HubInput
from services.shared.runner import Fatal, run_service
from services.shared.settings import Settings
from services.workflows import HubWorkflow

log = logs.get(__name__)


async def run_publisher(client: Client, settings: Settings) -> int:
    """Publish ``PUBLISHER_EVENTS`` headlines through a hub; return how many the reader got."""
    hub_id = settings.hub_workflow_id or f"hub-{uuid.uuid4().hex[:6]}"
    hub = await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    log.info("hub started", workflow_id=hub_id, events=settings.publisher_events)
    progress = Progress()
    try:
        async with asyncio.TaskGroup() as group:
            reading = group.create_task(
                read_headlines(client, hub_id, hub.result_run_id, settings, progress=progress)
            )
            await publish_headlines(
                client, hub_id, settings, events=settings.publisher_events, reader=progress
            )
    except ExceptionGroup as failed:
        # The first failure cancelled the other task; report it, not the group.
        raise failed.exceptions[0] from None
    received = reading.result()
    await hub.signal(HubWorkflow.close)
    await hub.result()
    log.info("hub closed", published=settings.publisher_events, received=received)
    return received


async def main(settings: Settings) -> None:
    received = await run_publisher(await connect(settings), settings)
    if received != settings.publisher_events:
        raise Fatal(f"the reader got {received} of {settings.publisher_events} headlines")


if __name__ == "__main__":
    run_service("publisher", main, one_shot=True)
