"""Activities: the payment step of the order, publishing its own progress."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from services.shared.models import PROGRESS_TOPIC, ChargeInput, Progress

_HEARTBEAT_EVERY = 0.5  # seconds; a killed worker is noticed within the heartbeat timeout


@activity.defn
async def charge_card(charge: ChargeInput) -> str:
    """Pretend to charge a card, publishing progress into the parent workflow's stream."""
    attempt = activity.info().attempt
    stream = WorkflowStreamClient.from_within_activity(batch_interval=timedelta(milliseconds=200))
    progress = stream.topic(PROGRESS_TOPIC, type=Progress)
    async with stream:  # leaving the block flushes, so "card charged" lands before we return
        progress.publish(Progress("charging card...", attempt), force_flush=True)
        await _work(charge.seconds)
        progress.publish(Progress("card charged", attempt), force_flush=True)
    return f"charge-{charge.order_id}"


async def _work(seconds: float) -> None:
    remaining = seconds
    while remaining > 0:
        activity.heartbeat()
        step = min(_HEARTBEAT_EVERY, remaining)
        await asyncio.sleep(step)
        remaining -= step
