"""Streams across runs: continue-as-new keeps one chain of ids; a new chain never mixes in;
a Temporal restart is ridden out on the same connection.

These tests run their own dev servers: one that suggests continue-as-new
after a short history, so a ticker rolls over within seconds, and one
restarted on the same port and database.
"""

from __future__ import annotations

import contextlib
import dataclasses
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import ResetReapplyType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import Client, WorkflowHandle

from services.shared.connect import runtime
from services.shared.models import NEWS_TOPIC, TICK_TOPIC, HubInput, TickerInput
from services.shared.settings import Settings
from services.web.chain import chain_runs, status
from services.worker import build_worker
from services.workflows import HubWorkflow, TickerWorkflow
from testkit.devserver import DevServer, dev_server, free_port
from testkit.sse import SseEvent
from testkit.waiting import eventually
from tests.processes import Service
from tests.test_web_support import (
    connection,
    items,
    publish,
    read_until_end,
    running_web,
    take,
    until,
    viewer,
)

TICKS = 12


@pytest.fixture(scope="module")
async def rolling() -> AsyncIterator[DevServer]:
    """A dev server that suggests continue-as-new after 25 history events, with a worker."""
    config = {"limit.historyCount.suggestContinueAsNew": 25}
    async with dev_server(dynamic_config=config) as server, build_worker(server.client, "rolling"):
        yield server


@pytest.fixture
def rolling_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, task_queue="rolling")


async def test_a_stream_crosses_continue_as_new_with_one_chain_of_ids(
    rolling: DevServer, rolling_settings: Settings
) -> None:
    client = rolling.client
    ticker = await _ticker(client, rolling_settings, ticks=TICKS)
    first_run = ticker.result_run_id
    async with running_web(client, rolling_settings) as web:
        async with viewer(web, ticker.id, topics=TICK_TOPIC) as events:
            before = await take(events, TICK_TOPIC, 5)
        await eventually(lambda: _rolled_over(client, ticker), what="the ticker to continue as new")
        async with viewer(web, ticker.id, last_event_id=before[-1].id or "") as events:
            after = items(await read_until_end(events), TICK_TOPIC)
        async with viewer(web, ticker.id, topics=TICK_TOPIC) as events:
            whole = items(await read_until_end(events), TICK_TOPIC)
    runs = await _runs(client, ticker)
    print(f"continue-as-new: {TICKS} ticks over {len(runs)} runs")
    assert len(runs) >= 3
    for seen in (before + after, whole):
        assert [e.id for e in seen] == [f"{first_run}:{n}" for n in range(TICKS)]
        assert [e.json()["number"] for e in seen] == list(range(TICKS))


async def test_an_old_chain_is_never_read_into_a_new_one(
    rolling: DevServer, rolling_settings: Settings
) -> None:
    client = rolling.client
    old = await _ticker(client, rolling_settings, ticks=8)
    await old.result()
    new = await _ticker(client, rolling_settings, ticks=8)
    async with running_web(client, rolling_settings) as web:
        resume = f"{old.result_run_id}:3"
        async with viewer(web, old.id, last_event_id=resume) as events:
            rest = items(await read_until_end(events), TICK_TOPIC)
        async with viewer(web, old.id) as events:
            fresh = items(await read_until_end(events), TICK_TOPIC)
    assert len(await _runs(client, old)) >= 2  # the old chain itself continued as new
    assert [e.id for e in rest] == [f"{old.result_run_id}:{n}" for n in range(4, 8)]
    assert [e.id for e in fresh] == [f"{new.result_run_id}:{n}" for n in range(8)]


async def test_viewers_ride_out_a_temporal_restart_on_the_same_connection(
    tmp_path: Path, settings: Settings
) -> None:
    port, database = free_port(), tmp_path / "temporal.db"
    env = {"TEMPORAL_ADDRESS": f"127.0.0.1:{port}", "TASK_QUEUE": "restart"}
    worker = Service("worker", env, tmp_path / "worker.log")
    settings = dataclasses.replace(settings, task_queue="restart")
    hub_id, seen, states = "hub-restart", list[SseEvent](), list[str]()

    async def read(events: AsyncIterator[SseEvent], done: Callable[[], bool]) -> None:
        async for event in events:
            if event.event == "state":
                states.append(event.json()["state"])
            elif event.event == NEWS_TOPIC:
                seen.append(event)
            if done():
                return

    async with contextlib.AsyncExitStack() as first_server:
        await first_server.enter_async_context(dev_server(port=port, database=database))
        worker.start()
        client = await Client.connect(env["TEMPORAL_ADDRESS"], runtime=runtime())
        await client.start_workflow(HubWorkflow.run, HubInput(), id=hub_id, task_queue="restart")
        await publish(client, hub_id, range(3))
        try:
            async with running_web(client, settings) as web, viewer(web, hub_id) as events:
                await read(events, lambda: len(seen) == 3)
                await first_server.aclose()  # Temporal goes away under the open stream
                await read(events, lambda: states[-1:] == ["reconnecting"])
                async with dev_server(port=port, database=database):
                    await publish(client, hub_id, range(3, 6))
                    await read(events, lambda: len(seen) == 6 and states[-1] == "live")
                    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)
        finally:
            worker.kill()
    assert [e.json()["seq"] for e in seen] == list(range(6))
    assert [e.offset for e in seen] == list(range(6))


async def test_a_reset_run_and_a_restarted_one_are_new_chains_never_mixed_with_the_old(
    client: Client, settings: Settings
) -> None:
    """A reset (or any new run) under one id starts a log of its own at offset 0.

    Its first_run_id is the old run's, so naming a chain by it would apply one
    log's positions to another; the web names chains by continue-as-new links.
    """
    hub_id = f"hub-reset-{settings.task_queue}"
    async with build_worker(client, settings.task_queue):
        old = await client.start_workflow(
            HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
        )
        await publish(client, hub_id, range(5))
        async with running_web(client, settings) as web, connection(web, hub_id) as events:
            before = await until(events, lambda got: _item_at(got[-1], old.result_run_id or "", 4))
            reset = await _reset_to_start(client, hub_id, old.result_run_id or "")
            await publish(client, hub_id, range(2))
            after_reset = await until(events, lambda got: _item_at(got[-1], reset, 1))
            await client.get_workflow_handle(hub_id).terminate("restarted by the test")
            restarted = await client.start_workflow(
                HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
            )
            await publish(client, hub_id, range(1))
            after_restart = await until(
                events, lambda got: _item_at(got[-1], restarted.result_run_id or "", 0)
            )
            # An id of the old chain still means the old chain, and only it.
            async with viewer(web, hub_id, last_event_id=f"{old.result_run_id}:2") as rest:
                old_tail = items(await read_until_end(rest), NEWS_TOPIC)
        await restarted.signal(HubWorkflow.close)
    first_run = await client.get_workflow_handle(hub_id, run_id=reset).describe()
    assert first_run.raw_description.workflow_execution_info.first_run_id == old.result_run_id
    assert {e.json()["chain"] for e in before if e.event == "item"} == {old.result_run_id}
    assert [_kind(e) for e in after_reset if e.event != "state"] == [
        ("end", "TERMINATED"),
        ("chain", reset),
        ("item", reset),
        ("item", reset),
    ]
    assert [e.json()["offset"] for e in after_reset if e.event == "item"] == [0, 1]
    assert [_kind(e) for e in after_restart if e.event != "state"][-2:] == [
        ("chain", restarted.result_run_id),
        ("item", restarted.result_run_id),
    ]
    assert [e.offset for e in old_tail] == [3, 4]
    assert {e.chain for e in old_tail} == {old.result_run_id}


# -- helpers --------------------------------------------------------------------
async def _reset_to_start(client: Client, workflow_id: str, run_id: str) -> str:
    """Reset the run to its first workflow task, reapplying nothing: a new, empty log."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    completed = [
        e.event_id
        async for e in handle.fetch_history_events()
        if e.HasField("workflow_task_completed_event_attributes")
    ]
    response = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
            reason="the test resets it",
            workflow_task_finish_event_id=completed[0],
            request_id=uuid.uuid4().hex,
            reset_reapply_type=ResetReapplyType.RESET_REAPPLY_TYPE_NONE,
        )
    )
    return response.run_id


def _item_at(event: SseEvent, chain: str, offset: int) -> bool:
    return (
        event.event == "item"
        and event.json()["chain"] == chain
        and event.json()["offset"] == offset
    )


def _kind(event: SseEvent) -> tuple[str, str]:
    data = event.json()
    return event.event, data.get("status") or data.get("chain") or ""


async def _ticker(
    client: Client, settings: Settings, *, ticks: int
) -> WorkflowHandle[TickerWorkflow, int]:
    # keep=ticks: nothing is truncated, so every offset must arrive.
    return await client.start_workflow(
        TickerWorkflow.run,
        TickerInput(ticks=ticks, interval_seconds=0.1, keep=ticks),
        id=settings.ticker_workflow_id,
        task_queue=settings.task_queue,
    )


async def _rolled_over(client: Client, ticker: WorkflowHandle[TickerWorkflow, int]) -> bool:
    run_id, _ = await status(client, ticker.id, None)
    return run_id != ticker.result_run_id


async def _runs(client: Client, ticker: WorkflowHandle[TickerWorkflow, int]) -> list[str]:
    """The runs of the chain that ``ticker`` started, from its history's links."""
    return await chain_runs(client, ticker.id, ticker.result_run_id or "")
