"""publisher: scenario 3, plain code publishing into a passive hub workflow.

Starts a hub, runs a subscriber task beside the publisher, publishes
headlines with ``WorkflowStreamClient.create`` in bounded batches, ends the
stream with an in-band final event, then signals ``close``. Exits 0 once the
subscriber has every headline, in order, exactly once.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from services.shared import logs
from services.shared.backoff import Backoff
from services.shared.connect import connect
from services.shared.models import NEWS_TOPIC, Headline, HubInput
from services.shared.runner import Fatal, run_service
from services.shared.settings import Settings
from services.shared.streams import following
from services.workflows import HubWorkflow

log = logs.get(__name__)

HEADLINES = (
    "Workflow hosts its own event log",
    "Subscribers resume from any offset",
    "Publishers batch events into signals",
    "Polls are long-running updates",
    "Offsets are global across topics",
    "Truncation bounds the log",
    "Continue-as-new carries the stream",
    "Nothing lost, nothing repeated",
)
# Above this many events, log every Nth instead of each (a burst would flood the logs).
_LOG_EACH_UP_TO = 100
_LOG_EVERY = 1000


async def run_publisher(client: Client, settings: Settings) -> int:
    """Publish ``PUBLISHER_EVENTS`` headlines through a hub; return how many arrived."""
    hub_id = settings.hub_workflow_id or f"hub-{uuid.uuid4().hex[:6]}"
    hub = await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    log.info("hub started", workflow_id=hub_id, events=settings.publisher_events)
    reader = asyncio.create_task(_read_headlines(client, hub_id, hub.result_run_id, settings))
    try:
        await _publish(client, hub_id, settings)
        received = await reader
    finally:
        reader.cancel()
    await hub.signal(HubWorkflow.close)
    await hub.result()
    log.info("hub closed", published=settings.publisher_events, received=received)
    return received


async def _publish(client: Client, hub_id: str, settings: Settings) -> None:
    batch = settings.publisher_batch_size
    stream = WorkflowStreamClient.create(
        client, hub_id, batch_interval=timedelta(milliseconds=200), max_batch_size=batch
    )
    news = stream.topic(NEWS_TOPIC, type=Headline)
    async with stream:
        for seq in range(settings.publisher_events):
            news.publish(Headline(seq, HEADLINES[seq % len(HEADLINES)]))
            if (seq + 1) % batch == 0:
                # A tight loop never yields to the background flusher, so
                # everything would go in one oversized signal: bound it here.
                await stream.flush()
        news.publish(Headline(settings.publisher_events, "end of stream", final=True))
    log.info("published", events=settings.publisher_events, batch_size=batch)


async def _read_headlines(
    client: Client, hub_id: str, run_id: str | None, settings: Settings
) -> int:
    """Read until the final headline, checking each arrives once and in order."""
    expected = settings.publisher_events
    received = 0
    backoff = Backoff(f"{hub_id} subscription", settings.reconnect_attempts)
    async with following(
        client,
        hub_id,
        run_id,
        NEWS_TOPIC,
        result_type=Headline,
        backoff=backoff,
        poll_cooldown=settings.poll_cooldown,
    ) as items:
        async for item in items:
            headline = item.data
            if headline.final:
                break
            if headline.seq != received:
                raise Fatal(f"headline {headline.seq} arrived where {received} was due")
            received += 1
            if expected <= _LOG_EACH_UP_TO or received % _LOG_EVERY == 0:
                log.info("headline", offset=item.offset, text=headline.text, seq=headline.seq)
    if received != expected:
        raise Fatal(f"stream ended after {received} of {expected} headlines")
    return received


async def main(settings: Settings) -> None:
    await run_publisher(await connect(settings), settings)


if __name__ == "__main__":
    run_service("publisher", main, one_shot=True)
