"""Fan-out: many viewers share one upstream poll; a slow or vanished viewer costs nobody.

"One poll in flight" is counted from the workflow's history (Update accepted
minus Update completed), not taken from the web's own counters.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from services.shared.models import NEWS_TOPIC, HubInput
from services.shared.settings import Settings
from services.web.chain import Position
from services.web.fanout import Fanout
from services.web.stream import Dropped, Item, Message, Stream
from services.workflows import HubWorkflow
from testkit.sse import SseEvent
from testkit.waiting import eventually
from tests.test_web_support import Web, publish, running_web, viewer

pytestmark = pytest.mark.usefixtures("worker")
VIEWERS = 50
POLL = "__temporal_workflow_stream_poll"  # the library's poll Update


async def test_fifty_viewers_get_every_event_through_one_poll(
    client: Client, settings: Settings
) -> None:
    hub = await _hub(client, settings)
    async with running_web(client, settings) as web:
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
    """The fan-out itself: a viewer that stops reading is cut off past its buffer."""
    hub = await _hub(client, settings)
    fanout = Fanout(client, dataclasses.replace(settings, web_viewer_buffer=3))
    try:
        slow = await fanout.join(hub.id, None)
        fast = await fanout.join(hub.id, None)
        slow_messages, fast_messages = slow.messages(), fast.messages()
        first = asyncio.create_task(_next(slow_messages))  # it takes one event, then no more
        reading = asyncio.create_task(_items(fast_messages, 10))
        await eventually(_live(slow.stream, 2), what="both viewers to be live")
        await publish(client, hub.id, range(9), final=True)
        fast_items = await reading  # all of them, while the slow one reads nothing more
        assert await first == Item(fast_items[0].event)
        # Cut off the moment its buffer of 3 overflowed: one read, four behind.
        assert [m async for m in slow_messages] == [Dropped(behind=4)]
        slow.leave()
        # It resumes by its last id and misses nothing.
        resumed = await fanout.join(hub.id, Position(slow.stream.chain, 0))
        again = await _items(resumed.messages(), 9)
    finally:
        await fanout.close()
    assert [m.event.offset for m in fast_items] == list(range(10))
    assert [m.event.offset for m in again] == list(range(1, 10))
    await hub.signal(HubWorkflow.close)


# -- helpers --------------------------------------------------------------------
async def _hub(client: Client, settings: Settings) -> WorkflowHandle[HubWorkflow, None]:
    return await client.start_workflow(
        HubWorkflow.run,
        HubInput(),
        id=f"hub-{settings.pipeline_workflow_id}",
        task_queue=settings.task_queue,
    )


async def _read_news(web: Web, hub_id: str, *, count: int | None = None) -> list[SseEvent]:
    """News events until the final headline (or ``count`` of them)."""
    got: list[SseEvent] = []
    async with viewer(web, hub_id, topics=NEWS_TOPIC) as events:
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
    return peak, accepted


async def _in_flight(hub: WorkflowHandle[HubWorkflow, None]) -> int:
    """Stream polls accepted and not completed, as the history stands now."""
    polls: set[str] = set()
    async for event in hub.fetch_history_events():
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.input.name == POLL:
                polls.add(request.meta.update_id)
        elif event.HasField("workflow_execution_update_completed_event_attributes"):
            polls.discard(event.workflow_execution_update_completed_event_attributes.meta.update_id)
    return len(polls)


async def _nudged(client: Client, hub: WorkflowHandle[HubWorkflow, None]) -> bool:
    """Publish one event and wait until the hub has it; True if no poll is in flight then."""
    before = await WorkflowStreamClient.create(client, hub.id).get_offset()
    await publish(client, hub.id, range(1))
    await eventually(lambda: _offset_past(client, hub.id, before), what="the nudge to land")
    return await _in_flight(hub) == 0


async def _offset_past(client: Client, hub_id: str, offset: int) -> bool:
    current: int = await WorkflowStreamClient.create(client, hub_id).get_offset()
    return current > offset


def _live(stream: Stream, count: int) -> Callable[[], Awaitable[bool]]:
    async def live() -> bool:
        return stream.live_viewers == count

    return live


async def _next(messages: AsyncIterator[Message]) -> Message:
    return await anext(messages)


async def _items(messages: AsyncIterator[Message], count: int) -> list[Item]:
    got: list[Item] = []
    async for message in messages:
        if isinstance(message, Item):
            got.append(message)
            if len(got) == count:
                return got
    raise AssertionError(f"ended after {got}")
