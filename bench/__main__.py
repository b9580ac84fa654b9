"""python -m bench: Workflow Streams latency and throughput on a local dev server.

Prints, for this machine:
  * publish-to-receive latency of single events (force_flush), p50 / p99 / max;
  * a 20,000-event burst through a hub: publish time and end-to-end rate.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
import uuid
from datetime import timedelta

from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from services.publisher import run_publisher
from services.shared import logs
from services.shared.backoff import Backoff
from services.shared.models import NEWS_TOPIC, Headline, HubInput
from services.shared.settings import Settings
from services.shared.streams import following
from services.worker import build_worker
from services.workflows import HubWorkflow
from testkit.devserver import dev_server

SAMPLES = 100
BURST = 20_000


async def latency(client: Client, task_queue: str) -> list[float]:
    """Seconds from publish (force_flush) to receipt, one event at a time."""
    hub = await client.start_workflow(
        HubWorkflow.run, HubInput(), id=f"bench-{uuid.uuid4().hex[:6]}", task_queue=task_queue
    )
    received: asyncio.Queue[float] = asyncio.Queue()

    async def reader() -> None:
        backoff = Backoff("bench reader", attempts=3)
        async with following(
            client,
            hub.id,
            hub.result_run_id,
            NEWS_TOPIC,
            result_type=Headline,
            backoff=backoff,
            poll_cooldown=timedelta(milliseconds=100),
        ) as items:
            async for _ in items:
                received.put_nowait(time.perf_counter())

    task = asyncio.create_task(reader())
    samples = []
    stream = WorkflowStreamClient.create(client, hub.id, batch_interval=timedelta(seconds=2))
    news = stream.topic(NEWS_TOPIC, type=Headline)
    async with stream:
        for seq in range(SAMPLES + 1):
            sent = time.perf_counter()
            news.publish(Headline(seq, "tick"), force_flush=True)
            arrived = await received.get()
            if seq:  # the first one also pays for starting the subscription
                samples.append(arrived - sent)
    task.cancel()
    await hub.signal(HubWorkflow.close)
    return samples


async def burst(client: Client, task_queue: str) -> float:
    """Seconds to publish BURST events through a hub and read them all back."""
    settings = dataclasses.replace(Settings(), task_queue=task_queue, publisher_events=BURST)
    began = time.perf_counter()
    await run_publisher(client, settings)
    return time.perf_counter() - began


async def main() -> None:
    logs.configure("bench", level="warning")  # the figures, not the services' chatter
    async with dev_server() as server:
        client = server.client
        task_queue = f"bench-{uuid.uuid4().hex[:6]}"
        async with build_worker(client, task_queue):
            samples = await latency(client, task_queue)
            took = await burst(client, task_queue)
    ms = sorted(s * 1000 for s in samples)
    p99 = ms[int(len(ms) * 0.99) - 1]
    print(f"bench: publish-to-receive latency over {len(ms)} events (force_flush, one at a time)")
    print(f"bench:   p50 {statistics.median(ms):.0f} ms   p99 {p99:.0f} ms   max {ms[-1]:.0f} ms")
    print(
        f"bench: burst of {BURST:,} events, published and read back: {took:.2f} s "
        f"({BURST / took:,.0f} events/s end to end)"
    )


if __name__ == "__main__":
    asyncio.run(main())
