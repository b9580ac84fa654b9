"""The four scenarios, driven in-process against a real dev server and worker."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs
from temporalio.client import Client, WorkflowContinuedAsNewError
from temporalio.contrib.workflow_streams import WorkflowStreamClient, WorkflowStreamItem

from services.order_starter import run_order
from services.publisher import run_publisher
from services.shared.models import (
    FINAL_STAGE,
    NEWS_TOPIC,
    STAGE_TOPIC,
    WORK_STAGES,
    Headline,
    HubInput,
    PipelineInput,
    StageEvent,
)
from services.shared.settings import Settings
from services.shared.streams import subscription
from services.ticker import follow_ticker
from services.workflows import HubWorkflow, PipelineWorkflow

pytestmark = pytest.mark.usefixtures("worker")
COOLDOWN = Settings().poll_cooldown


async def test_order_prints_the_seed_sequence(client: Client, settings: Settings) -> None:
    settings = dataclasses.replace(settings, order_id="order-1")
    with capture_logs() as logs:
        charge_id = await run_order(client, settings)
    assert charge_id == "charge-order-1"
    stream = [(e["event"], e.get("state") or e.get("message")) for e in logs if "offset" in e]
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
        client, handle.id, run_id, STAGE_TOPIC, result_type=StageEvent, poll_cooldown=COOLDOWN
    ) as items:
        async for item in items:
            first.append((item.offset, item.data.stage))
            if len(first) == 2:
                break  # "disconnect" after two events
    rest: list[tuple[int, str]] = []
    async with subscription(
        client,
        handle.id,
        run_id,
        STAGE_TOPIC,
        result_type=StageEvent,
        poll_cooldown=COOLDOWN,
        from_offset=2,
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


async def test_burst_of_20000_arrives_complete_in_bounded_signals(
    client: Client, settings: Settings
) -> None:
    """Pitfall 4: an unbounded burst makes one huge signal and stalls the workflow task."""
    events = 20_000
    settings = dataclasses.replace(
        settings, hub_workflow_id=f"burst-{settings.task_queue}", publisher_events=events
    )
    assert await run_publisher(client, settings) == events  # every headline, once, in order

    signals: list[int] = []
    task_faults: list[str] = []
    handle = client.get_workflow_handle(str(settings.hub_workflow_id))
    async for event in handle.fetch_history_events():
        if event.HasField("workflow_execution_signaled_event_attributes"):
            attributes = event.workflow_execution_signaled_event_attributes
            signals.append(attributes.input.ByteSize())
        if event.HasField("workflow_task_failed_event_attributes") or event.HasField(
            "workflow_task_timed_out_event_attributes"
        ):
            task_faults.append(str(event.event_type))
    print(f"burst: {events} events in {len(signals)} signals, largest {max(signals)} bytes")
    assert task_faults == []  # no deadlock (TMPRL1101), no timed-out task
    assert len(signals) >= events // settings.publisher_batch_size
    assert max(signals) < 512 * 1024  # under the server's and SDK's size warning


async def test_hub_rolls_over_with_a_bounded_log_and_offsets_continue(
    client: Client, settings: Settings
) -> None:
    """Pitfall 3: a long-lived hub must continue-as-new, and must carry what fits."""
    hub_id = f"rollover-{settings.task_queue}"
    first = await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    # ~6 MB of history: past the server's suggestion to continue-as-new.
    events, text = 10_000, "x" * 400
    stream = WorkflowStreamClient.create(client, hub_id, max_batch_size=500)
    news = stream.topic(NEWS_TOPIC, type=Headline)
    async with stream:
        for seq in range(events):
            news.publish(Headline(seq, text))
            if (seq + 1) % 500 == 0:
                await stream.flush()

    # The hub waits for a quiet moment, then rolls over: the first run closes.
    first_run = client.get_workflow_handle(hub_id, run_id=first.result_run_id)
    with pytest.raises(WorkflowContinuedAsNewError):
        await asyncio.wait_for(first_run.result(follow_runs=False), timeout=120)

    async with WorkflowStreamClient.create(client, hub_id) as late:
        late.topic(NEWS_TOPIC, type=Headline).publish(Headline(events, "after", final=True))
    async with subscription(
        client, hub_id, None, NEWS_TOPIC, result_type=Headline, poll_cooldown=COOLDOWN
    ) as items:
        carried = [item.offset async for item in _until_final(items)]
    print(f"rollover: carried offsets {carried[0]}..{events - 1} of {events} into the new run")
    # Offsets go on from the old run; only a bounded tail was carried.
    assert carried[-1] == events
    assert carried == list(range(carried[0], events + 1))
    assert 0 < len(carried) - 1 < events
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def _until_final(
    items: AsyncIterator[WorkflowStreamItem[Headline]],
) -> AsyncIterator[WorkflowStreamItem[Headline]]:
    async for item in items:
        yield item
        if item.data.final:
            return
