"""The Durable Streams read protocol, against the real app and a real dev server.

Every read goes over real HTTP to ``/v1/streams/{workflow_id}``; what a
separate reader of the Workflow Stream (the library's own subscription, or
a query) holds is the reference. The PyPI ``durable-streams`` client reads
too, the way any user of the protocol would.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from durable_streams import RetentionGoneError, astream
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RawValue
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from services.shared.models import HubInput, PipelineInput, TickerInput
from services.shared.settings import Settings
from services.web.durable import cursor as cursors
from services.web.durable.offsets import BadOffset, Offset, Sentinel, parse
from services.worker import build_worker
from services.workflows import HubWorkflow, PipelineWorkflow, TickerWorkflow
from testkit.devserver import DevServer, dev_server
from testkit.sse import SseEvent
from testkit.waiting import eventually
from tests.test_web_support import Web, publish, running_web, sse_events

pytestmark = pytest.mark.usefixtures("worker")

NEXT, UP_TO_DATE, CLOSED, CURSOR = (
    "stream-next-offset",
    "stream-up-to-date",
    "stream-closed",
    "stream-cursor",
)


# -- offsets, without a server ------------------------------------------------
def test_offsets_sort_as_strings_in_stream_order_across_chains() -> None:
    early, late = 1_764_620_000_000_000, 1_764_620_999_000_000
    tokens = [
        Offset(early, 9, "b-run").token(),
        Offset(early, 10, "b-run").token(),
        Offset(early, 123_456, "b-run").token(),
        Offset(late, 0, "a-run").token(),  # a later chain of the same id sorts after
    ]
    assert sorted(tokens) == tokens
    parsed = [parse(t) for t in tokens]
    assert all(isinstance(p, Offset) for p in parsed)
    assert [p.token() for p in parsed if isinstance(p, Offset)] == tokens
    assert parse("-1") is Sentinel.START and parse("now") is Sentinel.NOW
    for token in tokens:
        assert not set(token) & set(",&=?/") and token not in ("-1", "now")
    with pytest.raises(BadOffset, match=r"use -1 .* now"):
        parse("12")


def test_a_cursor_echoed_in_its_own_interval_moves_strictly_forward() -> None:
    now = cursors.EPOCH + 1000 * cursors.INTERVAL_S + 1
    assert cursors.next_cursor(None, now) == "1000"
    assert cursors.next_cursor("999", now) == "1000"
    moved = cursors.next_cursor("1000", now)
    assert int(moved) > 1000
    assert cursors.next_cursor("1000", now) == moved  # the same for every viewer: they collapse


# -- catch-up -------------------------------------------------------------------
async def test_catch_up_reads_a_closed_pipeline_as_json_messages_then_eof(
    client: Client, settings: Settings
) -> None:
    pipeline = await _finished_pipeline(client, settings)
    reference = await _subscribed(client, pipeline, 6)
    async with running_web(client, settings) as web:
        whole = await _get(web, pipeline, offset="-1")
        eof = await _get(web, pipeline, offset=whole.headers[NEXT])
        again = await web.http.get(
            f"/v1/streams/{pipeline}",
            params={"offset": whole.headers[NEXT]},
            headers={"If-None-Match": eof.headers["etag"]},
        )
        async with astream(f"{web.url}/v1/streams/{pipeline}", offset="-1", live=False) as pypi:
            via_client = await pypi.read_json()
    assert whole.status_code == 200
    assert whole.headers["content-type"] == "application/json"
    assert whole.json() == reference
    assert via_client == reference  # the PyPI client reads the same
    assert whole.headers[UP_TO_DATE] == "true"  # closure may show here, or one read later
    assert whole.headers["cache-control"] == "public, max-age=5"  # -1 moves: briefly
    # The canonical EOF: an empty array at the final offset, closed, kept by edges.
    assert (eof.status_code, eof.json(), eof.headers[CLOSED]) == (200, [], "true")
    assert eof.headers[NEXT] == whole.headers[NEXT]
    assert eof.headers["cache-control"] == "public, max-age=60, stale-while-revalidate=300"
    assert eof.headers["etag"].endswith(':c"')
    assert (again.status_code, again.content) == (304, b"")


async def test_the_pypi_client_resumes_from_a_saved_offset_with_no_gap_and_no_repeat(
    client: Client, settings: Settings
) -> None:
    async with _hub_web(client, settings, "durable", 5) as (web, hub_id):
        url = f"{web.url}/v1/streams/{hub_id}"
        async with astream(url, offset="-1", live=False) as first:
            before = [m async for m in first.iter_json()]
            saved = first.offset  # what a client persists
        await publish(client, hub_id, range(5, 10), final=True)
        async with astream(url, offset=saved, live="long-poll") as resumed:
            after = await _until_final(resumed.iter_json())
    seqs = [m["data"]["seq"] for m in before + after]
    assert seqs == list(range(11))  # no gap, no repeat
    assert [m["offset"] for m in before + after] == list(range(11))
    assert {m["topic"] for m in before + after} == {"news"}


# -- offset=now and long-poll ---------------------------------------------------
async def test_offset_now_skips_what_is_there_and_a_long_poll_from_it_gets_the_next(
    client: Client, settings: Settings
) -> None:
    async with _hub_web(client, settings, "now", 5) as (web, hub_id):
        tail = await _get(web, hub_id, offset="now")
        head = await web.http.head(f"/v1/streams/{hub_id}")
        waiting = asyncio.create_task(_get(web, hub_id, offset="now", live="long-poll"))
        published = iter(range(5, 1000))

        async def answered() -> bool:
            # One headline per check: the long-poll answers with the first after its start.
            if not waiting.done():
                seq = next(published)
                await publish(client, hub_id, range(seq, seq + 1))
            return waiting.done()

        await eventually(answered, what="the long-poll from offset=now to answer")
        new = waiting.result()
    assert (tail.status_code, tail.json()) == (200, [])
    assert tail.headers[UP_TO_DATE] == "true" and tail.headers["cache-control"] == "no-store"
    assert "etag" not in tail.headers
    assert (head.status_code, head.headers[NEXT]) == (200, tail.headers[NEXT])
    assert new.status_code == 200, new.text
    seqs = [m["data"]["seq"] for m in new.json()]
    assert seqs and seqs[0] >= 5  # nothing that was there before it asked
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    assert new.headers[CURSOR] and new.headers[NEXT] > tail.headers[NEXT]


async def test_an_empty_long_poll_answers_204_with_the_tail_and_a_moving_cursor(
    client: Client, settings: Settings
) -> None:
    async with _hub_web(client, settings, "204", 3) as (web, hub_id):
        caught_up = await _get(web, hub_id, offset="-1")
        tail = caught_up.headers[NEXT]
        empty = await _get(web, hub_id, offset=tail, live="long-poll", timeout="0.3")
        echoed = await _get(
            web, hub_id, offset=tail, live="long-poll", timeout="0.3", cursor=empty.headers[CURSOR]
        )
    assert (empty.status_code, empty.content) == (204, b"")
    assert empty.headers[NEXT] == tail and empty.headers[UP_TO_DATE] == "true"
    assert empty.headers["cache-control"] == "no-store"  # edges must not keep a 204
    assert CLOSED not in empty.headers
    assert int(echoed.headers[CURSOR]) > int(empty.headers[CURSOR])


# -- SSE ----------------------------------------------------------------------
async def test_sse_sends_data_then_control_and_closes_with_the_stream(
    client: Client, settings: Settings
) -> None:
    pipeline = await _finished_pipeline(client, settings)
    async with _hub_web(client, settings, "sse", 3) as (web, hub_id):
        async with _sse(web, hub_id, offset="-1") as events:
            data, control = await anext(events), await anext(events)
            await publish(client, hub_id, range(3, 4))
            live_data, live_control = await anext(events), await anext(events)
        async with _sse(web, pipeline, offset="-1") as events:
            closed = [event async for event in events]  # the server ends the response
    assert (data.event, control.event) == ("data", "control")
    assert [m["data"]["seq"] for m in data.json()] == [0, 1, 2]
    assert control.json()["upToDate"] is True and control.json()["streamCursor"]
    assert [m["data"]["seq"] for m in live_data.json()] == [3]
    assert live_control.json()["streamNextOffset"] > control.json()["streamNextOffset"]
    assert [e.event for e in closed][:2] == ["data", "control"]
    assert closed[-1].event == "control" and closed[-1].json()["streamClosed"] is True
    assert "streamCursor" not in closed[-1].json()
    assert [m["topic"] for m in closed[0].json()] == ["stage"] * 6


# -- truncation, continue-as-new, bad input --------------------------------------
async def test_a_position_removed_by_truncation_is_gone_410(
    client: Client, settings: Settings
) -> None:
    ticker = await _ticker(client, settings, ticks=30, keep=3)
    # A window of 3 events: what the ticker dropped is gone from the web's memory too.
    async with running_web(client, settings, web_replay_events=3) as web:
        early = await _get(web, ticker.id, offset="-1", live="long-poll")
        await ticker.result()  # meanwhile it truncated all but the last 3 ticks
        gone = await _get(web, ticker.id, offset=early.headers[NEXT])
        url = f"{web.url}/v1/streams/{ticker.id}"
        with pytest.raises(RetentionGoneError):
            async with astream(url, offset=early.headers[NEXT], live=False) as refused:
                await refused.read_json()
        restart = await _get(web, ticker.id, offset=gone.json()["earliest_offset"])
        from_start = await _get(web, ticker.id, offset="-1")
    assert max(m["offset"] for m in early.json()) < 27  # read before the ticks it kept
    assert gone.status_code == 410
    assert "truncated" in gone.json()["detail"]
    assert [m["offset"] for m in restart.json()] == [27, 28, 29]
    assert from_start.json() == restart.json()


@pytest.fixture(scope="module")
async def rolling() -> AsyncIterator[DevServer]:
    """A dev server that suggests continue-as-new after 25 history events, with a worker."""
    config = {"limit.historyCount.suggestContinueAsNew": 25}
    async with (
        dev_server(dynamic_config=config) as server,
        build_worker(server.client, "durable-rolling"),
    ):
        yield server


async def test_offsets_are_exact_across_continue_as_new(
    rolling: DevServer, settings: Settings
) -> None:
    client, ticks = rolling.client, 12
    settings = dataclasses.replace(settings, task_queue="durable-rolling")
    ticker = await _ticker(client, settings, ticks=ticks, keep=ticks)  # keeps every tick
    async with running_web(client, settings) as web:
        first = await _get(web, ticker.id, offset="-1", live="long-poll")
        saved = first.headers[NEXT]
        await ticker.result()
        runs = await _runs(client, ticker)
        url = f"{web.url}/v1/streams/{ticker.id}"
        async with astream(url, offset=saved, live=False) as resumed:
            rest = await resumed.read_json()
        async with astream(url, offset="-1", live=False) as whole:
            everything = await whole.read_json()
    assert len(runs) >= 3, runs  # the chain continued as new at least twice
    assert [m["offset"] for m in first.json() + rest] == list(range(ticks))
    assert [m["data"]["number"] for m in everything] == list(range(ticks))


async def test_bad_input_is_a_clear_400_and_an_unknown_stream_404(
    client: Client, settings: Settings
) -> None:
    pipeline = await _finished_pipeline(client, settings)
    async with running_web(client, settings) as web:
        malformed = await _get(web, pipeline, offset="yesterday")
        number = await _get(web, pipeline, offset="3")
        mode = await _get(web, pipeline, offset="-1", live="websocket")
        timeout = await _get(web, pipeline, offset="-1", live="long-poll", timeout="600")
        unknown = await _get(web, "no-such-workflow", offset="-1")
        token = (await _get(web, pipeline, offset="-1")).headers[NEXT]
        beyond = await _get(web, pipeline, offset=_moved(token, +5))
    for refused in (malformed, number, mode, timeout, beyond):
        assert refused.status_code == 400, refused.text
    assert "offset='yesterday' is not accepted; use -1" in malformed.json()["detail"]
    assert "live='websocket' is not accepted" in mode.json()["detail"]
    assert "timeout='600' is not accepted" in timeout.json()["detail"]
    assert "beyond the end" in beyond.json()["detail"]
    assert unknown.status_code == 404 and "no-such-workflow" in unknown.json()["detail"]


# -- helpers ------------------------------------------------------------------
async def _get(web: Web, workflow_id: str, **params: str) -> httpx.Response:
    return await web.http.get(f"/v1/streams/{workflow_id}", params=params)


@asynccontextmanager
async def _sse(web: Web, workflow_id: str, **params: str) -> AsyncIterator[AsyncIterator[SseEvent]]:
    """One SSE read; fails unless the server answered 200 with an event stream."""
    query = {**params, "live": "sse"}
    async with web.http.stream("GET", f"/v1/streams/{workflow_id}", params=query) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield _named(sse_events(response))


async def _named(events: AsyncIterator[SseEvent]) -> AsyncIterator[SseEvent]:
    """The protocol's events (heartbeat comments are not events)."""
    async for event in events:
        if event.event in ("data", "control"):
            yield event


async def _until_final(messages: AsyncIterator[Any]) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = []
    async for message in messages:
        got.append(message)
        if message["data"].get("final"):
            return got
    raise AssertionError(f"the stream ended without a final headline after {got[-3:]}")


async def _subscribed(client: Client, workflow_id: str, count: int) -> list[dict[str, Any]]:
    """What the library's own subscription reads: the reference for every message."""
    got: list[dict[str, Any]] = []
    stream = WorkflowStreamClient.create(client, workflow_id)
    async for item in stream.subscribe([], from_offset=0, result_type=RawValue):
        data = json.loads(item.data.payload.data)
        got.append({"offset": item.offset, "topic": item.topic, "data": data})
        if len(got) == count:
            break
    return got


def _moved(token: str, by: int) -> str:
    offset = parse(token)
    assert isinstance(offset, Offset)
    return offset.at(offset.offset + by).token()


@asynccontextmanager
async def _hub_web(
    client: Client, settings: Settings, tag: str, headlines: int
) -> AsyncIterator[tuple[Web, str]]:
    """The web, and a hub of this test's own with ``headlines`` published: its workflow id."""
    hub_id = f"hub-{tag}-{settings.task_queue}"
    await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    async with running_web(client, settings) as web:
        await publish(client, hub_id, range(headlines))
        yield web, hub_id


async def _finished_pipeline(client: Client, settings: Settings) -> str:
    """A pipeline run that has finished (six stage events, a closed stream): its workflow id."""
    run = PipelineInput(step_seconds=0.05, steps_per_stage=1)
    workflow_id = settings.pipeline_workflow_id
    await client.execute_workflow(
        PipelineWorkflow.run, run, id=workflow_id, task_queue=settings.task_queue
    )
    return workflow_id


async def _ticker(
    client: Client, settings: Settings, *, ticks: int, keep: int
) -> WorkflowHandle[TickerWorkflow, int]:
    """A ticker every 0.1 s that truncates its log to the last ``keep`` ticks."""
    ticker = TickerInput(ticks=ticks, interval_seconds=0.1, keep=keep)
    return await client.start_workflow(
        TickerWorkflow.run, ticker, id=settings.ticker_workflow_id, task_queue=settings.task_queue
    )


async def _runs(client: Client, ticker: WorkflowHandle[TickerWorkflow, int]) -> list[str]:
    """The runs of the chain ``ticker`` started, from its history's continue-as-new links."""
    runs = [ticker.result_run_id or ""]
    while True:
        handle = client.get_workflow_handle(ticker.id, run_id=runs[-1])
        successor = ""
        async for event in handle.fetch_history_events():
            attributes = event.workflow_execution_continued_as_new_event_attributes
            successor = successor or attributes.new_execution_run_id
        if not successor:
            return runs
        runs.append(successor)
