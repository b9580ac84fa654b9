"""What the web tests share (no tests here): the real app on a real port, and an SSE reader.

The app runs under uvicorn on a free loopback port, in the test's event
loop, against the real dev server; the tests talk to it with httpx over TCP,
as a browser would, and read the event stream with testkit.sse.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from services.shared.models import NEWS_TOPIC, Headline, HubInput, PipelineInput
from services.shared.settings import Settings
from services.web.app import create_app
from services.web.chain import chain_of, status
from services.web.server import serving
from services.workflows import HubWorkflow, PipelineWorkflow
from testkit.sse import SseEvent, SseParser

# Short enough that tests see streams close; the rest as in production.
TEST_WEB = {"web_linger_seconds": 0.2, "web_heartbeat_seconds": 1.0}


@dataclass(frozen=True)
class Web:
    """The running dashboard: its base URL and an HTTP client for it."""

    url: str
    http: httpx.AsyncClient
    app: FastAPI  # for a test that checks the registry itself


@asynccontextmanager
async def running_web(client: Client, settings: Settings, **overrides: Any) -> AsyncIterator[Web]:
    """The dashboard app on a free port until the block ends."""
    settings = dataclasses.replace(settings, **{**TEST_WEB, **overrides})
    app = create_app(client, settings)
    async with serving(app, "127.0.0.1", 0) as port:
        url = f"http://127.0.0.1:{port}"
        timeout = httpx.Timeout(30.0, connect=5.0)
        async with httpx.AsyncClient(base_url=url, timeout=timeout) as http:
            yield Web(url, http, app)


async def sse_events(response: httpx.Response) -> AsyncIterator[SseEvent]:
    """The events of a streaming response."""
    parser = SseParser()
    async for line in response.aiter_lines():
        if (event := parser.line(line)) is not None:
            yield event


@asynccontextmanager
async def viewer(
    web: Web, workflow_id: str, *, topics: str = "", last_event_id: str | None = None, **params: str
) -> AsyncIterator[AsyncIterator[SseEvent]]:
    """One open SSE connection; fails unless the server answered 200 with an event stream."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    query = {"topics": topics, **params} if topics else params
    async with web.http.stream(
        "GET", f"/streams/{workflow_id}", params=query, headers=headers
    ) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield sse_events(response)


@asynccontextmanager
async def connection(
    web: Web, *follows: str, after: str | None = None, last_event_id: str | None = None
) -> AsyncIterator[AsyncIterator[SseEvent]]:
    """One multiplexed ``/events`` connection following ``follows``; it must answer 200."""
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    params: dict[str, str | list[str]] = {"follow": list(follows)}
    if after is not None:
        params["after"] = after
    async with web.http.stream("GET", "/events", params=params, headers=headers) as response:
        assert response.status_code == 200, (await response.aread()).decode()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield sse_events(response)


async def latest_chain(client: Client, workflow_id: str) -> str:
    """The chain of the id's latest run, as the web names it."""
    run_id, _ = await status(client, workflow_id, None)
    return await chain_of(client, workflow_id, run_id)


async def until(
    events: AsyncIterator[SseEvent], done: Callable[[list[SseEvent]], bool]
) -> list[SseEvent]:
    """Events until ``done`` accepts those received so far."""
    got: list[SseEvent] = []
    async for event in events:
        got.append(event)
        if done(got):
            return got
    raise AssertionError(f"the connection closed after {got[-3:]}")


async def start_hub(
    client: Client, settings: Settings, tag: str
) -> WorkflowHandle[HubWorkflow, None]:
    """A fresh hub under an id of this test's own: ``hub-<tag>-<task queue>``."""
    return await client.start_workflow(
        HubWorkflow.run,
        HubInput(),
        id=f"hub-{tag}-{settings.task_queue}",
        task_queue=settings.task_queue,
    )


async def start_pipeline(
    client: Client, settings: Settings
) -> WorkflowHandle[PipelineWorkflow, str]:
    """A short pipeline run (six stage events) under the test's pipeline id."""
    return await client.start_workflow(
        PipelineWorkflow.run,
        PipelineInput(step_seconds=0.1, steps_per_stage=1),
        id=settings.pipeline_workflow_id,
        task_queue=settings.task_queue,
    )


async def read_until_end(events: AsyncIterator[SseEvent]) -> list[SseEvent]:
    """Every event up to and including ``end``."""
    seen = []
    async for event in events:
        seen.append(event)
        if event.event == "end":
            return seen
    raise AssertionError(f"the stream closed without an end event after {seen[-3:]}")


async def take(events: AsyncIterator[SseEvent], topic: str, count: int) -> list[SseEvent]:
    """The first ``count`` events of ``topic``; the stream must not close before."""
    got: list[SseEvent] = []
    async for event in events:
        if event.event == topic:
            got.append(event)
            if len(got) == count:
                return got
    raise AssertionError(f"the stream closed after {len(got)} {topic} events")


def items(events: list[SseEvent], topic: str) -> list[SseEvent]:
    return [e for e in events if e.event == topic]


async def publish(
    client: Client,
    hub_id: str,
    seqs: range,
    *,
    batch: int = 100,
    final: bool = False,
    text: str = "",
) -> None:
    """Headlines ``seqs`` into a hub, one signal per ``batch``; then a final one if asked."""
    stream = WorkflowStreamClient.create(client, hub_id)
    news = stream.topic(NEWS_TOPIC, type=Headline)
    async with stream:
        for seq in seqs:
            news.publish(Headline(seq, text or f"headline {seq}"))
            if (seq + 1) % batch == 0:
                await stream.flush()
        if final:
            news.publish(Headline(seqs.stop, "end of stream", final=True))
