"""order-starter: scenario 1, an order with heterogeneous topics.

Starts an order, follows its ``status`` (published by the workflow) and
``progress`` (published by the ``charge_card`` activity) topics in one
iterator, decodes each item by its topic, prints the workflow result, exits 0.
"""

from __future__ import annotations

import uuid

from temporalio.client import Client
from temporalio.common import RawValue

from services.shared import logs
from services.shared.connect import connect
from services.shared.models import (
    PROGRESS_TOPIC,
    STATUS_TOPIC,
    OrderInput,
    OrderStatus,
    Progress,
)
from services.shared.runner import run_service
from services.shared.settings import Settings
from services.shared.subscriptions import follow
from services.workflows import OrderWorkflow

log = logs.get(__name__)


async def run_order(client: Client, settings: Settings) -> str:
    """Place one order and print its stream until ``complete``; return the charge id."""
    order_id = settings.order_id or f"order-{uuid.uuid4().hex[:6]}"
    handle = await client.start_workflow(
        OrderWorkflow.run,
        OrderInput(order_id, settings.charge_seconds),
        id=order_id,
        task_queue=settings.task_queue,
    )
    log.info("order placed", order=order_id, run_id=handle.result_run_id)
    converter = client.data_converter.payload_converter
    topics = [STATUS_TOPIC, PROGRESS_TOPIC]
    run_id = handle.result_run_id
    async with follow(client, settings, order_id, run_id, topics, result_type=RawValue) as items:
        async for item in items:
            # One iterator, two payload types: decode by topic.
            if item.topic == STATUS_TOPIC:
                status = converter.from_payload(item.data.payload, OrderStatus)
                log.info("status", state=status.state, offset=item.offset, order=order_id)
                if status.state == "complete":
                    break
            else:
                note = converter.from_payload(item.data.payload, Progress)
                # A retried activity is a new publisher: its progress arrives
                # again. Say so rather than hide it.
                retried = {"retried": True} if (note.attempt or 1) > 1 else {}
                attempt = {"attempt": note.attempt} if note.attempt else {}
                log.info("progress", message=note.message, offset=item.offset, **attempt, **retried)
    charge_id: str = await handle.result()
    log.info("workflow result", result=charge_id)
    return charge_id


async def main(settings: Settings) -> None:
    await run_order(await connect(settings), settings)


if __name__ == "__main__":
    run_service("order-starter", main, one_shot=True)
