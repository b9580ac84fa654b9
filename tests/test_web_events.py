"""``GET /events``: one connection per page carrying every panel's stream (contract B).

Over real HTTP against the real app and a real dev server: every followed
stream arrives on one connection; one token resumes all of them; an id with
no run waits, an ended chain is followed by the id's next run; a position
past the log's end is refused in words, never a silent freeze.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from temporalio.client import Client

from services.shared.models import NEWS_TOPIC, HubInput
from services.shared.settings import Settings
from services.web import tokens
from services.web.chain import Position
from services.workflows import HubWorkflow
from testkit.sse import SseEvent
from tests.test_web_support import (
    connection,
    latest_chain,
    publish,
    running_web,
    start_hub,
    start_pipeline,
    until,
)

pytestmark = pytest.mark.usefixtures("worker")


async def test_one_connection_carries_every_followed_stream(
    client: Client, settings: Settings
) -> None:
    hub = await start_hub(client, settings, "a")
    await publish(client, hub.id, range(3))
    pipeline = await start_pipeline(client, settings)
    later = f"hub-later-{settings.task_queue}"  # no run yet: the stream waits for one
    async with (
        running_web(client, settings) as web,
        connection(web, hub.id, pipeline.id, later) as events,
    ):
        hello = await anext(events)
        seen = await until(events, lambda got: _is_end(got[-1], pipeline.id))
        await client.start_workflow(
            HubWorkflow.run, HubInput(), id=later, task_queue=settings.task_queue
        )
        await publish(client, later, range(2))
        seen += await until(events, lambda got: _item_of(got[-1], later, 1))
    streams = hello.json()["streams"]
    assert (hello.event, hello.retry) == ("hello", 2000)
    assert streams[hub.id]["state"] == "live"
    assert streams[hub.id]["chain"] == await latest_chain(client, hub.id)
    assert streams[pipeline.id]["chain"] == await latest_chain(client, pipeline.id)
    assert streams[later] == {
        "state": "waiting",
        "chain": None,
        "run_id": None,
        "resumed_after": None,
    }
    hub_items = _items(seen, hub.id)
    assert [(i["offset"], i["topic"], i["data"]["seq"]) for i in hub_items] == [
        (n, NEWS_TOPIC, n) for n in range(3)
    ]
    stages = [i["data"]["stage"] for i in _items(seen, pipeline.id)]
    assert stages[-1] == "complete" and len(stages) == 6
    end = next(e.json() for e in seen if _is_end(e, pipeline.id))
    assert end == {"stream": pipeline.id, "status": "COMPLETED", "next_offset": 6, "detail": ""}
    chain = next(e.json() for e in seen if e.event == "chain")
    assert chain["stream"] == later
    assert chain["chain"] == await latest_chain(client, later)
    assert [i["offset"] for i in _items(seen, later)] == [0, 1]
    for workflow_id in (hub.id, later):
        await client.get_workflow_handle(workflow_id).signal(HubWorkflow.close)


async def test_one_token_resumes_every_stream_with_no_gap_and_no_repeat(
    client: Client, settings: Settings
) -> None:
    first, second = await start_hub(client, settings, "1"), await start_hub(client, settings, "2")
    await publish(client, first.id, range(4))
    await publish(client, second.id, range(2))
    async with running_web(client, settings) as web:
        async with connection(web, first.id, second.id) as events:
            before = await until(
                events, lambda got: _has(got, first.id, 3) and _has(got, second.id, 1)
            )
        token = before[-1].id or ""
        await publish(client, first.id, range(4, 6))
        await publish(client, second.id, range(2, 5))
        async with connection(web, first.id, second.id, last_event_id=token) as events:
            hello = await anext(events)
            after = await until(
                events, lambda got: _has(got, first.id, 5) and _has(got, second.id, 4)
            )
        # A page that changes its follow set keeps the positions of the streams it still follows.
        async with connection(web, second.id, after=token) as events:
            narrowed = await until(events, lambda got: _item_of(got[-1], second.id, 4))
    for workflow_id, total in ((first.id, 6), (second.id, 5)):
        offsets = [i["offset"] for i in _items(before + after, workflow_id)]
        assert offsets == list(range(total)), workflow_id
    assert hello.json()["streams"][first.id]["resumed_after"] == 3
    assert [i["offset"] for i in _items(narrowed, second.id)] == [2, 3, 4]
    assert all(e.id and e.id.startswith("1.") for e in before + after)
    for hub in (first, second):
        await hub.signal(HubWorkflow.close)


async def test_an_ended_chain_is_followed_by_the_ids_next_run(
    client: Client, settings: Settings
) -> None:
    old = await start_pipeline(client, settings)
    await old.result()
    async with running_web(client, settings) as web, connection(web, old.id) as events:
        drained = await until(events, lambda got: _is_end(got[-1], old.id))
        new = await start_pipeline(client, settings)
        rest = await until(events, lambda got: _is_end(got[-1], old.id))
    assert [i["offset"] for i in _items(drained, old.id)] == list(range(6))
    chain, *_ = [e.json() for e in rest if e.event == "chain"]
    assert chain == {"stream": old.id, "chain": new.result_run_id, "run_id": new.result_run_id}
    assert {i["chain"] for i in _items(rest, old.id)} == {new.result_run_id}
    assert [i["offset"] for i in _items(rest, old.id)] == list(range(6))


async def test_a_position_beyond_the_logs_end_is_refused_and_the_stream_starts_over(
    client: Client, settings: Settings
) -> None:
    hub = await start_hub(client, settings, "far")
    await publish(client, hub.id, range(3))
    chain = await latest_chain(client, hub.id)
    forged = tokens.encode({hub.id: Position(chain, 999)})
    async with running_web(client, settings) as web:
        async with connection(web, hub.id, last_event_id=forged) as events:
            seen = await until(events, lambda got: _item_of(got[-1], hub.id, 2))
        by_id = await web.http.get(f"/streams/{hub.id}", headers={"Last-Event-ID": f"{chain}:998"})
    refused = next(e.json() for e in seen if e.event == "refused")
    assert refused["stream"] == hub.id
    assert "offset 999 is beyond the end" in refused["why"]
    assert [e.event for e in seen if e.event in ("refused", "chain")] == ["refused", "chain"]
    assert [i["offset"] for i in _items(seen, hub.id)] == [0, 1, 2]
    assert by_id.status_code == 400
    assert "offset 999 is beyond the end" in by_id.json()["detail"]
    await hub.signal(HubWorkflow.close)


async def test_bad_follows_and_tokens_are_refused_with_a_json_message(
    client: Client, settings: Settings
) -> None:
    async with running_web(client, settings) as web:
        none = await web.http.get("/events")
        many = await web.http.get("/events", params={"follow": [f"w{n}" for n in range(17)]})
        bad = await web.http.get("/events", params={"follow": "a", "after": "yesterday"})
        forged = base64.urlsafe_b64encode(json.dumps({"k": ["x", -1]}).encode()).decode()
        negative = await web.http.get(
            "/events", params={"follow": "a"}, headers={"Last-Event-ID": f"1.{forged}"}
        )
    assert none.status_code == many.status_code == bad.status_code == negative.status_code == 400
    assert "1 to 16 follow=<workflow id>" in many.json()["detail"]
    assert "after 'yesterday' is not a resume token" in bad.json()["detail"]
    assert "Last-Event-ID" in negative.json()["detail"]


# -- helpers --------------------------------------------------------------------
def _has(events: list[SseEvent], workflow_id: str, offset: int) -> bool:
    return any(_item_of(e, workflow_id, offset) for e in events)


def _items(events: list[SseEvent], workflow_id: str) -> list[dict[str, Any]]:
    return [e.json() for e in events if e.event == "item" and e.json()["stream"] == workflow_id]


def _item_of(event: SseEvent, workflow_id: str, offset: int) -> bool:
    if event.event != "item":
        return False
    data = event.json()
    return bool(data["stream"] == workflow_id and data["offset"] == offset)


def _is_end(event: SseEvent, workflow_id: str) -> bool:
    return event.event == "end" and event.json()["stream"] == workflow_id
