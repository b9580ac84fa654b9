"""Publish-to-receive latency at a steady rate, and what each delivered event costs.

One publisher sends each event on its own (``force_flush``) at a steady rate;
one reader follows the hub with a given poll cooldown. Latency is from the
publish call to the reader's receipt, both in this process. The cost is read
from the hub's history afterwards: Updates (polls) and history events per
delivered event.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
import uuid
from dataclasses import dataclass

from temporalio.contrib.workflow_streams import WorkflowStreamClient

from bench.history import hub_history
from bench.stack import Stack
from services.shared.models import NEWS_TOPIC, Headline, HubInput
from services.shared.settings import Settings
from services.shared.subscriptions import follow
from services.workflows import HubWorkflow

WARM_UP = 5  # the first events also pay for starting the subscription


@dataclass(frozen=True)
class Latency:
    rate: float  # events per second
    cooldown_ms: float
    events: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    updates_per_event: float
    history_events_per_event: float


async def latency(stack: Stack, *, rate: float, cooldown: float, events: int) -> Latency:
    """Publish ``events`` at ``rate`` per second; a reader with ``cooldown`` s receives them."""
    client = stack.client
    hub = await client.start_workflow(
        HubWorkflow.run,
        HubInput(),
        id=f"latency-{uuid.uuid4().hex[:6]}",
        task_queue=stack.task_queue,
    )
    sent: dict[int, float] = {}
    received: dict[int, float] = {}

    async def read() -> None:
        reader = dataclasses.replace(
            Settings(), reconnect_attempts=5, poll_cooldown_seconds=cooldown
        )
        async with follow(
            client, reader, hub.id, hub.result_run_id, NEWS_TOPIC, result_type=Headline
        ) as items:
            async for item in items:
                received[item.data.seq] = time.perf_counter()
                if item.data.final:
                    return

    reader = asyncio.create_task(read())
    stream = WorkflowStreamClient.create(client, hub.id)
    news = stream.topic(NEWS_TOPIC, type=Headline)
    async with stream:
        began = time.perf_counter()
        for seq in range(events + 1):
            await asyncio.sleep(max(0.0, began + seq / rate - time.perf_counter()))
            sent[seq] = time.perf_counter()
            news.publish(Headline(seq, "tick", final=seq == events), force_flush=True)
    await asyncio.wait_for(reader, 60)
    await hub.signal(HubWorkflow.close)
    await hub.result()
    history = await hub_history(client, hub.id)

    ms = sorted((received[s] - sent[s]) * 1000 for s in range(WARM_UP, events))
    delivered = events + 1
    return Latency(
        rate=rate,
        cooldown_ms=cooldown * 1000,
        events=len(ms),
        p50_ms=statistics.median(ms),
        p99_ms=ms[max(0, round(len(ms) * 0.99) - 1)],
        max_ms=ms[-1],
        updates_per_event=history.updates / delivered,
        history_events_per_event=history.events / delivered,
    )
