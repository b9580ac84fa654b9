"""The web's SSE contract, over real HTTP against the real app and a real dev server.

Ids pin chain and offset; a resume continues exactly; a closed run is drained
then ends; a new run under the same id is a new chain; truncation is
reported; bad input gets 400, 404, 415, 403 or 503 with a JSON message.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client

from services.shared.models import (
    NEWS_TOPIC,
    STAGE_TOPIC,
    TickerInput,
)
from services.shared.settings import Settings
from services.workflows import HubWorkflow, TickerWorkflow
from testkit.sse import SseEvent
from tests.test_web_support import (
    Web,
    items,
    latest_chain,
    publish,
    read_until_end,
    running_web,
    start_hub,
    start_pipeline,
    take,
    viewer,
)

pytestmark = pytest.mark.usefixtures("worker")
JSON = {"Content-Type": "application/json"}


async def test_an_order_streams_with_ids_that_pin_chain_and_offset(
    client: Client, settings: Settings
) -> None:
    async with running_web(client, settings) as web:
        placed = await web.http.post("/api/orders", json={})
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["workflow_id"]
        async with web.http.stream("GET", f"/streams/{order_id}?topics=status,progress") as raw:
            assert raw.headers["cache-control"] == "no-cache"
            assert raw.headers["x-accel-buffering"] == "no"
        async with viewer(web, order_id, topics="status,progress") as events:
            seen = await read_until_end(events)
    chain = await latest_chain(client, order_id)
    hello, *stream, end = seen
    assert (hello.event, hello.retry, hello.json()["chain"]) == ("hello", 2000, chain)
    updates = [e for e in stream if e.event in ("status", "progress")]
    assert [e.id for e in updates] == [f"{chain}:{n}" for n in range(6)]
    states = [e.json()["state"] for e in updates if e.event == "status"]
    assert states == ["received", "shipped", "complete"]
    assert updates[1].json() == {"message": "charging card...", "attempt": 1}
    assert end.json()["status"] == "COMPLETED"


async def test_resume_after_last_event_id_has_no_gap_and_no_repeat(
    client: Client, settings: Settings
) -> None:
    hub_id = (await start_hub(client, settings, "resume")).id
    async with running_web(client, settings) as web:
        await publish(client, hub_id, range(5))
        async with viewer(web, hub_id, topics=NEWS_TOPIC) as events:
            first = await take(events, NEWS_TOPIC, 5)  # then the browser tab goes away
        await publish(client, hub_id, range(5, 10))
        resumed = await _news(web, hub_id, 5, last_event_id=first[-1].id or "")
        # The same, for a client that cannot set headers.
        by_query = await _news(web, hub_id, 2, after=first[1].id or "")
    assert [e.json()["seq"] for e in first + resumed] == list(range(10))
    assert [e.offset for e in first + resumed] == list(range(10))
    assert [e.json()["seq"] for e in by_query] == [2, 3]
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def test_an_idle_stream_carries_heartbeat_comments(
    client: Client, settings: Settings
) -> None:
    """Comment lines keep a quiet connection open through proxies (every 1 s here)."""
    hub_id = (await start_hub(client, settings, "idle")).id
    async with (
        running_web(client, settings, web_heartbeat_seconds=1.0) as web,
        web.http.stream("GET", f"/streams/{hub_id}") as response,
    ):
        lines = response.aiter_lines()
        comments = [line async for line in _take(lines, 12) if line.startswith(":")]
    assert comments[:2] == [": heartbeat", ": heartbeat"]
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def test_the_hub_button_publishes_headlines_a_viewer_receives(
    client: Client, settings: Settings
) -> None:
    hub_id = f"hub-web-{settings.task_queue}"
    async with running_web(client, settings, web_hub_workflow_id=hub_id) as web:
        published = await web.http.post("/api/hub/publish", json={})
        assert published.status_code == 202, published.text
        source = published.json()["source"]
        async with viewer(web, hub_id, topics=NEWS_TOPIC) as events:
            news: list[SseEvent] = []
            async for event in events:
                news.append(event)
                if event.event == NEWS_TOPIC and event.json()["final"]:
                    break
    headlines = [e.json() for e in items(news, NEWS_TOPIC)]
    assert [(h["source"], h["seq"]) for h in headlines] == [(source, n) for n in range(9)]
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def test_a_closed_run_is_drained_then_ends(client: Client, settings: Settings) -> None:
    handle = await start_pipeline(client, settings)
    await handle.result()
    async with running_web(client, settings) as web:
        async with viewer(web, handle.id, topics=STAGE_TOPIC) as events:
            whole = await read_until_end(events)
        stages = items(whole, STAGE_TOPIC)
        async with viewer(web, handle.id, last_event_id=stages[3].id) as events:
            rest = await read_until_end(events)
    assert [e.offset for e in stages] == list(range(6))
    assert stages[-1].json()["stage"] == "complete"
    assert [e.offset for e in items(rest, STAGE_TOPIC)] == [4, 5]
    assert rest[0].json()["resumed_after"] == 3
    assert rest[-1].json() == {"status": "COMPLETED", "next_offset": 6, "detail": ""}


async def test_a_new_run_under_the_same_id_is_a_new_chain(
    client: Client, settings: Settings
) -> None:
    """A Last-Event-ID of the old run is never applied to the new one."""
    old = await start_pipeline(client, settings)
    await old.result()
    new = await start_pipeline(client, settings)
    async with running_web(client, settings) as web:
        async with viewer(web, old.id, topics=STAGE_TOPIC) as events:
            fresh = items(await read_until_end(events), STAGE_TOPIC)
        old_id = f"{old.result_run_id}:2"
        async with viewer(web, old.id, topics=STAGE_TOPIC, last_event_id=old_id) as events:
            resumed = items(await read_until_end(events), STAGE_TOPIC)
    assert {e.chain for e in fresh} == {new.result_run_id}
    assert {e.chain for e in resumed} == {old.result_run_id}
    assert [e.offset for e in resumed] == [3, 4, 5]


async def test_positions_truncated_meanwhile_are_reported_first(
    client: Client, settings: Settings
) -> None:
    ticker = await client.start_workflow(
        TickerWorkflow.run,
        TickerInput(ticks=12, interval_seconds=0.1, keep=3),
        id=settings.ticker_workflow_id,
        task_queue=settings.task_queue,
    )
    await ticker.result()
    async with running_web(client, settings) as web:
        resume = f"{ticker.result_run_id}:1"
        async with viewer(web, ticker.id, topics="ticks", last_event_id=resume) as events:
            seen = await read_until_end(events)
    hello, gap, *ticks, end = [e for e in seen if e.event != "state"]
    assert hello.json()["resumed_after"] == 1
    assert (gap.event, gap.json()) == (
        "truncated",
        {"from_offset": 2, "to_offset": 9, "dropped": 7},
    )
    assert gap.id == f"{ticker.result_run_id}:8"  # a resume after it goes on past the gap
    assert [e.offset for e in ticks] == [9, 10, 11]
    assert end.event == "end"


async def test_bad_input_is_refused_with_a_json_message(client: Client, settings: Settings) -> None:
    handle = await start_pipeline(client, settings)
    async with running_web(client, settings, web_max_viewers=1) as web:
        unknown = await web.http.get("/streams/no-such-workflow")
        malformed = await web.http.get(
            f"/streams/{handle.id}", headers={"Last-Event-ID": "yesterday"}
        )
        bad_after = await web.http.get(f"/streams/{handle.id}?after=abc:-1")
        bad_topics = await web.http.get(f"/streams/{handle.id}?topics=a%0Ab")
        async with viewer(web, handle.id) as events:
            await anext(events)  # the one allowed viewer is connected
            full = await web.http.get(f"/streams/{handle.id}")
        not_json = await web.http.post("/api/orders", content="{}")
        foreign = await web.http.post(
            "/api/orders", json={}, headers={"Origin": "http://evil.example"}
        )
        extra = await web.http.post("/api/orders", json={"order_id": "x"})
    assert unknown.status_code == 404
    assert "no-such-workflow" in unknown.json()["detail"]
    assert malformed.status_code == 400
    assert "Last-Event-ID 'yesterday'" in malformed.json()["detail"]
    assert "<first run id>:<offset>" in malformed.json()["detail"]
    assert bad_after.status_code == 400
    assert bad_topics.status_code == 400
    assert (full.status_code, full.headers["retry-after"]) == (503, "5")
    assert "WEB_MAX_VIEWERS is 1" in full.json()["detail"]
    assert not_json.status_code == 415
    assert (foreign.status_code, extra.status_code) == (403, 400)
    await handle.result()


# -- helpers --------------------------------------------------------------------
async def _news(web: Web, hub_id: str, count: int, **resume: str) -> list[SseEvent]:
    async with viewer(web, hub_id, topics=NEWS_TOPIC, **resume) as events:
        return await take(events, NEWS_TOPIC, count)


async def _take(lines: AsyncIterator[str], count: int) -> AsyncIterator[str]:
    """The first ``count`` lines; an idle stream after its hello has only heartbeats."""
    for _ in range(count):
        yield await anext(lines)
