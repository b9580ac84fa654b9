"""The four scenarios, driven in-process against a real dev server and worker."""

from __future__ import annotations

import dataclasses

import pytest
from structlog.testing import capture_logs
from temporalio.client import Client

from services.order_starter import run_order
from services.publisher import run_publisher
from services.shared.models import FINAL_STAGE, STAGE_TOPIC, WORK_STAGES, PipelineInput, StageEvent
from services.shared.settings import Settings
from services.shared.streams import subscription
from services.ticker import follow_ticker
from services.workflows import PipelineWorkflow

pytestmark = pytest.mark.usefixtures("worker")


async def test_order_prints_the_seed_sequence(client: Client, settings: Settings) -> None:
    settings = dataclasses.replace(settings, order_id="order-1")
    with capture_logs() as logs:
        charge_id = await run_order(client, settings)
    assert charge_id == "charge-order-1"
    stream = [(e.get("topic"), e["event"]) for e in logs if "topic" in e]
    assert stream == [
        ("status", "received"),
        ("progress", "charging card..."),
        ("progress", "card charged"),
        ("status", "shipped"),
        ("progress", "charge id: charge-order-1"),
        ("status", "complete"),
    ]
    assert logs[-1] == {"event": "workflow result", "result": "charge-order-1", "log_level": "info"}


async def test_pipeline_stages_arrive_in_order_and_resume_mid_run(
    client: Client, settings: Settings
) -> None:
    handle = await client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(step_seconds=0.1, steps_per_stage=1),
        id=settings.pipeline_workflow_id,
        task_queue=settings.task_queue,
    )
    run_id = handle.result_run_id
    first: list[tuple[int, str]] = []
    async with subscription(
        client, handle.id, run_id, STAGE_TOPIC, result_type=StageEvent
    ) as items:
        async for item in items:
            first.append((item.offset, item.data.stage))
            if len(first) == 2:
                break  # "disconnect" after two events
    rest: list[tuple[int, str]] = []
    async with subscription(
        client, handle.id, run_id, STAGE_TOPIC, result_type=StageEvent, from_offset=2
    ) as items:
        async for item in items:
            rest.append((item.offset, item.data.stage))
            if item.data.stage == FINAL_STAGE:
                break
    assert first + rest == list(enumerate([*WORK_STAGES, FINAL_STAGE]))
    assert (await handle.result()).endswith("done")


async def test_publisher_delivers_every_headline_once(client: Client, settings: Settings) -> None:
    settings = dataclasses.replace(settings, publisher_events=25, publisher_batch_size=10)
    assert await run_publisher(client, settings) == 25


async def test_fast_ticker_sees_every_offset_and_slow_one_jumps(
    client: Client, settings: Settings
) -> None:
    with capture_logs() as fast_logs:
        assert await follow_ticker(client, settings, delay=0) == 0
    ticks = [e["offset"] for e in fast_logs if e["event"] == "tick"]
    assert ticks == list(range(settings.ticker_ticks))

    slow = dataclasses.replace(settings, ticker_workflow_id=settings.ticker_workflow_id + "-slow")
    with capture_logs() as slow_logs:
        jumps = await follow_ticker(client, slow, delay=slow.ticker_slow_delay_seconds)
    assert jumps >= 1
    for jump in (e for e in slow_logs if e["event"] == "jumped past truncated ticks"):
        assert jump["dropped"] == jump["to_offset"] - jump["from_offset"] > 0
    seen = [e["offset"] for e in slow_logs if e["event"] == "tick"]
    assert seen == sorted(set(seen)) and seen[-1] == slow.ticker_ticks - 1
