"""One stream's window: bounded by bytes as well as by count, and proof against odd payloads."""

from __future__ import annotations

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from services.shared.models import NEWS_TOPIC
from services.shared.settings import Settings
from services.workflows import HubWorkflow
from tests.test_web_support import (
    items,
    publish,
    read_until_end,
    running_web,
    start_hub,
    take,
    viewer,
)

pytestmark = pytest.mark.usefixtures("worker")
TEXT = "y" * 1000  # each headline about 1 KB


async def test_the_window_keeps_what_its_bytes_allow_and_older_events_come_from_temporal(
    client: Client, settings: Settings
) -> None:
    hub_id = (await start_hub(client, settings, "bytes")).id
    async with running_web(client, settings, web_replay_bytes=8 * 1024) as web:
        async with viewer(web, hub_id, topics=NEWS_TOPIC) as events:
            await publish(client, hub_id, range(100), text=TEXT)
            live = await take(events, NEWS_TOPIC, 100)
        status = (await web.http.get("/api/status")).json()["streams"][0]
        # A late joiner starts before the window: the rest is read from Temporal.
        async with viewer(web, hub_id, topics=NEWS_TOPIC) as events:
            late = await take(events, NEWS_TOPIC, 100)
    assert status["retained_bytes"] <= 8 * 1024
    assert 1 <= status["retained_events"] <= 8  # by bytes; WEB_REPLAY_EVENTS (2000) never bound
    for got in (live, late):
        assert [e.offset for e in got] == list(range(100))
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def test_an_undecodable_event_is_described_and_the_stream_goes_on(
    client: Client, settings: Settings
) -> None:
    hub = await start_hub(client, settings, "odd")
    hub_id = hub.id
    stream = WorkflowStreamClient.create(client, hub_id)
    odd = stream.topic("odd")
    async with stream:
        odd.publish(Payload(metadata={"encoding": b"json/plain"}, data=b"\xff\xfe not UTF-8"))
        odd.publish(Payload(metadata={"encoding": b"json/plain"}, data=b"{not json"))
        odd.publish(Payload(metadata={"encoding": b"binary/protobuf"}, data=b"\x08\x01"))
    await publish(client, hub_id, range(1))
    await hub.signal(HubWorkflow.close)
    async with running_web(client, settings) as web, viewer(web, hub_id) as events:
        seen = await read_until_end(events)
    described = [e.json() for e in items(seen, "odd")]
    assert described == [
        {"encoding": "json/plain", "bytes": 12, "undecodable": "UnicodeDecodeError"},
        {"encoding": "json/plain", "bytes": 9, "undecodable": "JSONDecodeError"},
        {"encoding": "binary/protobuf", "bytes": 2},
    ]
    assert [e.json()["seq"] for e in items(seen, NEWS_TOPIC)] == [0]
    assert seen[-1].json()["status"] == "COMPLETED"
