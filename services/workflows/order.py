"""Scenario 1: an order whose workflow and activity publish on different topics."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.contrib.workflow_streams import WorkflowStream

from services.shared.models import (
    PROGRESS_TOPIC,
    STATUS_TOPIC,
    ChargeInput,
    OrderInput,
    OrderStatus,
    Progress,
)

with workflow.unsafe.imports_passed_through():
    from services.activities import charge_card


@workflow.defn
class OrderWorkflow:
    """Publishes order status; its ``charge_card`` activity publishes progress."""

    @workflow.init
    def __init__(self, order: OrderInput) -> None:
        self.stream = WorkflowStream()
        self.status = self.stream.topic(STATUS_TOPIC, type=OrderStatus)
        self.progress = self.stream.topic(PROGRESS_TOPIC, type=Progress)

    @workflow.run
    async def run(self, order: OrderInput) -> str:
        self.status.publish(OrderStatus("received", order.order_id))
        charge_id = await workflow.execute_activity(
            charge_card,
            ChargeInput(order.order_id, order.charge_seconds),
            start_to_close_timeout=timedelta(seconds=60),
            # A worker that dies mid-charge is noticed this fast, and the
            # activity retried on whichever worker is up.
            heartbeat_timeout=timedelta(seconds=3),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1)),
        )
        self.status.publish(OrderStatus("shipped", order.order_id))
        self.progress.publish(Progress(f"charge id: {charge_id}"))
        self.status.publish(OrderStatus("complete", order.order_id))
        # Let in-flight polls collect "complete" before the run closes.
        await workflow.wait_condition(workflow.all_handlers_finished)
        return charge_id
