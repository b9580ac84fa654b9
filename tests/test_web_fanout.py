"""Fan-out: many viewers share one upstream poll; a slow or vanished viewer costs nobody.

"One poll in flight" is counted from the workflow's history (Update accepted
minus Update completed), not taken from the web's own counters.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator

import pytest
from structlog.testing import capture_logs
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from services.shared.models import NEWS_TOPIC
from services.shared.settings import Settings
from services.web.chain import POLL, Position, StreamEvent
from services.web.registry import Registry
from services.web.window import Dropped, Message, Window, watch
from services.workflows import HubWorkflow
from testkit.sse import SseEvent
from testkit.waiting import eventually
from tests.test_web_support import Web, publish, running_web, start_hub, viewer

pytestmark = pytest.mark.usefixtures("worker")
VIEWERS = 50


async def test_fifty_viewers_get_every_event_through_one_poll(
    client: Client, settings: Settings
) -> None:
    hub = await _hub(client, settings)
    # All fifty come from 127.0.0.1: one client, as far as the per-client cap can tell.
    async with running_web(client, settings, web_client_max_viewers=VIEWERS) as web:
        async with asyncio.TaskGroup() as group:
            readers = [group.create_task(_read_news(web, hub.id)) for _ in range(VIEWERS)]
            await _until_viewers(web, VIEWERS)
            await publish(client, hub.id, range(30), batch=5, final=True)
        received = [reader.result() for reader in readers]
    expected = list(range(31))  # 30 headlines and the final one, in bounded batches
    assert all([e.offset for e in got] == expected for got in received)
    assert all([e.json()["seq"] for e in got] == expected for got in received)
    peak, polls = await _polls_in_flight(hub)
    assert peak == 1, f"{peak} polls were in flight at once for {VIEWERS} viewers"
    assert polls >= 2  # the one subscription really polled, more than once
    await hub.signal(HubWorkflow.close)


async def test_a_viewer_that_vanishes_mid_stream_frees_its_subscription(
    client: Client, settings: Settings
) -> None:
    hub = await _hub(client, settings)
    await publish(client, hub.id, range(300), final=True)
    async with running_web(client, settings) as web:
        async with viewer(web, hub.id, topics=NEWS_TOPIC) as events:
            async for event in events:
                if event.event == NEWS_TOPIC and event.offset == 3:
                    break  # gone while the server still writes the other 297
        await eventually(lambda: _fanout_empty(web), what="the web to let go")
        # The poll it left waiting completes on the next event; none follows it.
        await eventually(lambda: _nudged(client, hub), what="no poll in flight")
        _, polls = await _polls_in_flight(hub)
        await _nudged(client, hub)
        assert (await _polls_in_flight(hub))[1] == polls, "a closed stream polled again"
        # The server is still up: another viewer is served.
        again = await _read_news(web, hub.id, count=1)
    assert again[0].offset == 0
    await hub.signal(HubWorkflow.close)


async def test_a_slow_viewer_is_dropped_and_never_delays_the_others(
    client: Client, settings: Settings
) -> None:
    """The window itself: a viewer that stops reading is cut off; the other gets everything."""
    async with _hub_window(client, settings) as (hub, registry, window):
        slow = _watch(window)
        fast = asyncio.create_task(_events(_watch(window), 10))
        await publish(client, hub.id, range(1))
        first = await anext(slow)  # then it is busy, and reads nothing more
        await publish(client, hub.id, range(1, 10))
        fast_events = await fast  # all of them, while the slow one read nothing more
        # Nine arrived while it was busy with the first, past its buffer of 3: cut off.
        rest = [m async for m in slow]
        resumed = await registry.read(hub.id, Position(window.chain, 1), wait=5, max_bytes=10**6)
    assert [e.offset for e in fast_events] == list(range(10))
    assert first == fast_events[0]
    assert rest == [Dropped(behind=9)]
    # It resumes by its position and misses nothing.
    assert [e.offset for e in resumed.events] == list(range(1, 10))
    await hub.signal(HubWorkflow.close)


async def test_a_burst_that_lands_while_viewers_wait_drops_nobody(
    client: Client, settings: Settings
) -> None:
    async with _hub_window(client, settings) as (hub, _, window):
        readers = [asyncio.create_task(_events(_watch(window), 50)) for _ in range(5)]
        await eventually(lambda: window.live_viewers == 5, what="five viewers at the head")
        await publish(client, hub.id, range(50), batch=50)  # one signal: one burst of 50
        received = [await reader for reader in readers]
    assert all([e.offset for e in got] == list(range(50)) for got in received)
    await hub.signal(HubWorkflow.close)


async def test_two_reaps_at_once_close_each_idle_stream_once(
    client: Client, settings: Settings
) -> None:
    """The reaper and a join making room both reap: neither may trip over the other."""
    hubs = [await _hub(client, settings, tag=str(n)) for n in range(3)]
    registry = Registry(client, settings)
    try:
        windows = [await registry.open(hub.id, None) for hub in hubs]
        await asyncio.gather(registry.reap(linger=0), registry.reap(linger=0))
        left = registry.windows
    finally:
        await registry.close()
    assert left == []
    assert all(w.done and w.state().state == "closing" for w in windows)
    for hub in hubs:
        await hub.signal(HubWorkflow.close)


async def test_a_crashed_reaper_is_logged_and_restarted(
    client: Client, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = await _hub(client, settings)
    reap, crashes = Registry.reap, list[float]()

    async def crashing_once(self: Registry, linger: float) -> None:
        if not crashes:
            crashes.append(linger)
            raise KeyError("what a bug in the reaper would raise")
        await reap(self, linger)

    monkeypatch.setattr(Registry, "reap", crashing_once)
    with capture_logs() as logs:
        async with running_web(client, settings) as web:
            await _read_news(web, hub.id, count=1, publish_first=(client, hub.id))
            # Reaped all the same, by the reaper started again after its crash.
            await eventually(lambda: _fanout_empty(web), what="the idle stream to be reaped")
            registry: Registry = web.app.state.registry
            jobs = web.app.state.jobs
    crashed = [e for e in logs if e["event"] == "background job crashed; restarting"]
    assert crashed and crashed[0]["exc_info"] and crashed[0]["job"] == "reap idle streams"
    assert jobs.crashes == {"reap idle streams": 1}
    assert registry.windows == []
    await hub.signal(HubWorkflow.close)


# -- helpers --------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _hub_window(
    client: Client, settings: Settings
) -> AsyncIterator[tuple[WorkflowHandle[HubWorkflow, None], Registry, Window]]:
    """A fresh hub, a registry whose viewers buffer 3 events, and the hub's open window."""
    hub = await _hub(client, settings)
    registry = Registry(client, dataclasses.replace(settings, web_viewer_buffer=3))
    try:
        yield hub, registry, await registry.open(hub.id, None)
    finally:
        await registry.close()


async def _watch(window: Window) -> AsyncIterator[Message]:
    """One viewer of ``window`` from offset 0, with the 3-event buffer of ``_hub_window``."""
    async for said in watch(window, 0, buffer=3, max_bytes=10**6):
        for message in said:
            yield message


async def _hub(
    client: Client, settings: Settings, *, tag: str = ""
) -> WorkflowHandle[HubWorkflow, None]:
    return await start_hub(client, settings, f"fanout{tag}")


async def _read_news(
    web: Web,
    hub_id: str,
    *,
    count: int | None = None,
    publish_first: tuple[Client, str] | None = None,
) -> list[SseEvent]:
    """News events until the final headline (or ``count`` of them)."""
    got: list[SseEvent] = []
    async with viewer(web, hub_id, topics=NEWS_TOPIC) as events:
        if publish_first is not None:
            await publish(*publish_first, range(1))
        async for event in events:
            if event.event == NEWS_TOPIC:
                got.append(event)
                if event.json()["final"] or len(got) == count:
                    return got
    raise AssertionError(f"the stream closed after {len(got)} headlines")


async def _until_viewers(web: Web, count: int) -> None:
    async def connected() -> bool:
        status = (await web.http.get("/api/status")).json()
        return bool(status["viewers"] == count)

    await eventually(connected, what=f"{count} viewers to connect", within=60)


async def _fanout_empty(web: Web) -> bool:
    status = (await web.http.get("/api/status")).json()
    return bool(status == {"viewers": 0, "streams": []})


async def _polls_in_flight(hub: WorkflowHandle[HubWorkflow, None]) -> tuple[int, int]:
    """The most stream polls (Updates) in flight at once over the history, and how many."""
    peak, accepted, _ = await _polls(hub)
    return peak, accepted


async def _in_flight(hub: WorkflowHandle[HubWorkflow, None]) -> int:
    """Stream polls accepted and not completed, as the history stands now."""
    return (await _polls(hub))[2]


async def _polls(hub: WorkflowHandle[HubWorkflow, None]) -> tuple[int, int, int]:
    """Polls at most in flight at once, polls accepted, and polls in flight at the end."""
    polls: set[str] = set()  # accepted and not yet completed
    peak = accepted = 0
    async for event in hub.fetch_history_events():
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.input.name == POLL:
                polls.add(request.meta.update_id)
                accepted += 1
                peak = max(peak, len(polls))
        elif event.HasField("workflow_execution_update_completed_event_attributes"):
            polls.discard(event.workflow_execution_update_completed_event_attributes.meta.update_id)
    return peak, accepted, len(polls)


async def _nudged(client: Client, hub: WorkflowHandle[HubWorkflow, None]) -> bool:
    """Publish one event and wait until the hub has it; True if no poll is in flight then."""
    before = await WorkflowStreamClient.create(client, hub.id).get_offset()
    await publish(client, hub.id, range(1))
    await eventually(lambda: _offset_past(client, hub.id, before), what="the nudge to land")
    return await _in_flight(hub) == 0


async def _offset_past(client: Client, hub_id: str, offset: int) -> bool:
    current: int = await WorkflowStreamClient.create(client, hub_id).get_offset()
    return current > offset


async def _events(messages: AsyncIterator[Message], count: int) -> list[StreamEvent]:
    got: list[StreamEvent] = []
    async for message in messages:
        if isinstance(message, StreamEvent):
            got.append(message)
            if len(got) == count:
                return got
    raise AssertionError(f"ended after {got}")
