"""chaos-worker: SIGKILL the worker while an order's charge_card activity runs.

The order runs from here: we start it and read its stream ourselves, so we
see every item as it arrives, by topic and attempt, with no log to parse.
When charge_card publishes its first progress (attempt 1: the charge has
begun) every worker container is killed, kept down, and started again. The
order must still complete, and each status event must arrive exactly once.
The activity's retry is a new publisher, so its progress arrives again,
carrying attempt 2: we check that it does.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from temporalio.client import WorkflowFailureError
from temporalio.common import RawValue

from chaos.engine import Service, Stack
from services.shared.connect import connect
from services.shared.models import (
    PROGRESS_TOPIC,
    STATUS_TOPIC,
    OrderInput,
    OrderStatus,
    Progress,
)
from services.shared.settings import Settings
from services.shared.subscriptions import follow
from services.workflows import OrderWorkflow

STATUSES = ["received", "shipped", "complete"]
TOPICS = [STATUS_TOPIC, PROGRESS_TOPIC]
CHARGE_SECONDS = 8.0  # long enough to kill the worker mid-charge, with room to spare
TIMEOUT_S = 300.0


async def _kill(worker: Service, order_id: str, down_s: float, say: Callable[[str], None]) -> float:
    containers = len(await asyncio.to_thread(worker.stack.containers, worker.name))
    await asyncio.to_thread(worker.kill)
    killed = time.monotonic()
    every = f", all {containers} containers" if containers > 1 else ""
    say(f"{order_id}: charge_card is running; killed the worker (SIGKILL{every})")
    await asyncio.sleep(down_s)
    await asyncio.to_thread(worker.start)
    say(f"worker started again after {down_s:.0f} s; waiting for the order to finish")
    return killed


async def chaos_worker(
    stack: Stack, settings: Settings, say: Callable[[str], None], *, down_s: float = 2.0
) -> bool:
    """Run one order through a worker kill; print and return the verdict."""
    client = await connect(settings)
    order_id = f"chaos-order-{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(
        OrderWorkflow.run,
        OrderInput(order_id, CHARGE_SECONDS),
        id=order_id,
        task_queue=settings.task_queue,
    )
    converter = client.data_converter.payload_converter
    statuses: list[str] = []
    attempts: list[int] = []  # the charge_card attempt behind each progress item it published
    killed: float | None = None
    async with (
        asyncio.timeout(TIMEOUT_S),
        follow(
            client, settings, order_id, handle.result_run_id, TOPICS, result_type=RawValue
        ) as items,
    ):
        async for item in items:
            if item.topic == STATUS_TOPIC:
                statuses.append(converter.from_payload(item.data.payload, OrderStatus).state)
                if statuses[-1] == "complete":
                    break
                continue
            attempt = converter.from_payload(item.data.payload, Progress).attempt
            if attempt is None:
                continue  # the workflow's own progress, not the activity's
            attempts.append(attempt)
            if killed is None:
                killed = await _kill(stack.service("worker"), order_id, down_s, say)
        try:
            await handle.result()
            completed = True
        except WorkflowFailureError:
            completed = False
    took = time.monotonic() - (killed or time.monotonic())
    retried = [a for a in attempts if a > 1]
    say(
        f"order completed={completed}; status events {statuses}; charge_card progress "
        f"{len(attempts)}x, {len(retried)} from a retry (attempts {attempts}); "
        f"completed {took:.1f} s after the kill"
    )
    once = statuses == STATUSES
    ok = completed and once and killed is not None and bool(retried)
    print(
        f"verdict: {'PASS' if ok else 'FAIL'}: order completed={completed} "
        f"status exactly once={once} retry marked={bool(retried)} kill-to-complete={took:.1f}s",
        flush=True,
    )
    return ok
