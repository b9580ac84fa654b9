"""One hub, four publishers and a reader, each its own process: how far one stream goes.

Publishers are paced to a target rate in total (by default the target of
10,000 events/s), or one publishes a burst unpaced. The reader audits every
source's sequence, so a figure is only "complete" if nothing was lost or
repeated. End-to-end events/s is the events the reader received over the
time from the first publish to the last receipt.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

from temporalio.service import RPCError

from bench.history import HubHistory, hub_history
from bench.stack import Stack, ready, result
from services.shared.models import HubInput
from services.shared.settings import Settings
from services.workflows import HubWorkflow

PUBLISHERS = 4
LIBRARY_COOLDOWN = 0.1  # the library's default poll_cooldown


@dataclass(frozen=True)
class Design:
    """Which publisher and which reader cooldown a run uses."""

    name: str
    publish_role: str
    cooldown: float
    depth: int = 0  # the project's publisher: ``applied`` calls in flight (0: its default)


PROJECT = Design("this project", "publish", Settings().poll_cooldown_seconds)
LIBRARY_DEFAULTS = Design("library defaults", "publish-defaults", LIBRARY_COOLDOWN)
# The project's publisher before pipelining: it waited for each ``applied``.
SYNCHRONOUS = Design("waits each window", "publish", PROJECT.cooldown, depth=1)


@dataclass(frozen=True)
class Throughput:
    design: str
    published: int
    received: int
    complete: bool  # every source's every event, once, in order
    lost: int
    repeated: int
    seconds: float  # first publish to last receipt
    events_per_s: float  # received / seconds
    rollovers: int
    history: HubHistory
    reader: dict[str, Any]
    publishers: list[dict[str, Any]]
    hub_ended: str  # "running until closed", or how it ended before that


async def run_load(
    stack: Stack,
    design: Design,
    *,
    rate: float,
    seconds: float = 0,
    events_each: int = 0,
    within: float,
    publishers: int = PUBLISHERS,
) -> Throughput:
    """``publishers`` for ``seconds`` (or ``events_each`` each), ``rate`` in total (0: unpaced)."""
    client = stack.client
    hub_id = f"load-{uuid.uuid4().hex[:6]}"
    await client.start_workflow(HubWorkflow.run, HubInput(), id=hub_id, task_queue=stack.task_queue)
    reader = await stack.spawn(
        "bench.load",
        "read",
        f"--hub={hub_id}",
        f"--sources={publishers}",
        f"--cooldown={design.cooldown}",
    )
    await ready(reader)  # publishing starts once the reader is polling
    spawned = [
        await stack.spawn(
            "bench.load",
            design.publish_role,
            f"--hub={hub_id}",
            f"--source=p{n}",
            f"--seconds={seconds}",
            f"--events={events_each}",
            f"--rate={rate / publishers}",
            f"--depth={design.depth}",
        )
        for n in range(publishers)
    ]
    began = time.time()
    published = [await result(p, within=within) for p in spawned]
    read = await result(reader, within=60)
    ended = await _close(stack, hub_id)
    history = await hub_history(client, hub_id)
    first_publish = min((p.get("began", began) for p in published), default=began)
    took = max(read.get("last", 0) - first_publish, 1e-9)
    received = int(read.get("received", 0))
    return Throughput(
        design=design.name,
        published=sum(int(p.get("published", 0)) for p in published),
        received=received,
        complete=bool(read.get("complete")),
        lost=int(read.get("lost", 0)),
        repeated=int(read.get("repeated", 0)),
        seconds=took,
        events_per_s=received / took,
        rollovers=history.runs - 1,
        history=history,
        reader=read,
        publishers=published,
        hub_ended=ended,
    )


async def _close(stack: Stack, hub_id: str) -> str:
    """Close the hub; if it had already ended, say how (a figure in its own right)."""
    hub = stack.client.get_workflow_handle(hub_id)
    try:
        await hub.signal(HubWorkflow.close)
    except RPCError:
        status = (await hub.describe()).status
        return status.name if status else "UNKNOWN"
    return "running until closed"
