"""The browser path: publish to Server-Sent Events delivery through the web service.

The web service runs as its own process (``bench.web``), the SSE viewers in
CLIENT_PROCESSES others (``bench.viewers sse``), the direct and naive readers
in more (``bench.viewers subscribe``); the bench publishes, one event at a
time with ``force_flush`` as ``bench.latency`` does, each event stamped with
its publish time. Three runs, each on a hub of its own:

* browser path: one SSE viewer and one direct ``subscribe()`` reader of the
  same events at once; the difference is what the web hop costs;
* fan-out: VIEWERS SSE viewers of one stream; every viewer audited, and the
  upstream polls in flight counted from the hub's history;
* naive bridge: VIEWERS ``subscribe()`` readers of one stream, what a bridge
  that opens a subscription per viewer would do, kept short and bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from bench.delivery import Delivery, merge
from bench.history import Polls, in_flight, polls
from bench.stack import Memory, Stack, busy_seconds, cpu_seconds, memory, result, stack
from bench.viewers import TOPIC, Stamp
from services.shared.models import HubInput
from services.workflows import HubWorkflow
from testkit.waiting import eventually

RATE = 10.0  # events/s, published one at a time
VIEWERS = 1000
# Viewer processes. A viewer (bench.eventsource) costs about 35 us of CPU per
# event, so 1,000 at 10 events/s take about a third of a core; spread over
# four processes no event loop lags behind its sockets (their shares are
# reported).
CLIENT_PROCESSES = 4
LATENCY_SECONDS = 20.0
FANOUT_SECONDS = 30.0
NAIVE_SECONDS = 5.0
UPDATE_LIMIT = 10  # history.maxInFlightUpdates: the server's default, per workflow
CONNECT_WITHIN = 120.0  # seconds for every viewer to be connected and live


@dataclass(frozen=True)
class Cpu:
    """CPU used while the events were published, in cores (1.0 is one core busy)."""

    web: float
    clients: list[float]  # each viewer process
    machine: float  # every process on the machine


@dataclass(frozen=True)
class BrowserPath:
    rate: float
    published: int
    sse: Delivery
    direct: Delivery


@dataclass(frozen=True)
class ManyViewers:
    viewers: int
    rate: float
    published: int
    sse: Delivery
    polls: Polls  # upstream polls, from the hub's history
    cpu: Cpu
    web_memory: Memory | None


@dataclass(frozen=True)
class NaiveBridge:
    rate: float
    published: int
    readers: Delivery
    polls: Polls


@dataclass(frozen=True)
class SseFigures:
    viewers: int
    client_processes: int
    browser_path: BrowserPath
    many_viewers: list[ManyViewers]  # half the viewers, then all of them
    naive_bridge: NaiveBridge
    server_errors: int  # ERROR lines the dev server logged over the three runs


async def sse(*, scale: float) -> SseFigures:
    """All three runs on one fresh dev server and one web process; everything ended after."""
    viewers = max(2 * UPDATE_LIMIT, round(VIEWERS * scale))
    with tempfile.NamedTemporaryFile(prefix="bench-sse-server-", suffix=".log") as server_log:
        async with contextlib.AsyncExitStack() as running:
            with _output_to(server_log.fileno()):
                s = await running.enter_async_context(stack())
            async with _web(s, max_viewers=viewers + 100) as web:
                events = max(50, round(RATE * LATENCY_SECONDS * scale))
                path = await browser_path(s, web, events=events)
                seconds = max(3.0, FANOUT_SECONDS * scale)
                many = [
                    await many_viewers(s, web, n, seconds=seconds) for n in (viewers // 2, viewers)
                ]
            naive = await naive_bridge(s, viewers, seconds=max(2.0, NAIVE_SECONDS * scale))
        server_log.seek(0)
        server_errors = server_log.read().count(b"level=ERROR")
    return SseFigures(viewers, CLIENT_PROCESSES, path, many, naive, server_errors)


@contextlib.contextmanager
def _output_to(fd: int) -> Iterator[None]:
    """Point this process's stdout and stderr at ``fd`` while processes are started.

    The dev server inherits them: under the naive bridge it logs one ERROR
    line per aborted Update (thousands a second), which would bury the
    bench's table. They are counted instead (``server_errors``).
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        for target, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, target)
            os.close(copy)


# -- the three runs ---------------------------------------------------------------
@dataclass(frozen=True)
class _Web:
    url: str
    process: asyncio.subprocess.Process


async def browser_path(stack: Stack, web: _Web, *, events: int) -> BrowserPath:
    """One SSE viewer and one direct reader of the same events, at RATE."""
    async with (
        _hub(stack, "browser") as hub,
        _viewers(stack, "sse", hub, [1], url=web.url) as (viewer,),
        _viewers(stack, "subscribe", hub, [1]) as (direct,),
    ):
        await _polls_waiting(stack.client, hub, 2, what="the web's and the direct reader's")
        await _publish(stack.client, hub, events)
        through_web = await result(viewer, within=60)
        straight = await result(direct, within=60)
    return BrowserPath(RATE, events, merge([through_web], [1]), merge([straight], [1]))


async def many_viewers(stack: Stack, web: _Web, viewers: int, *, seconds: float) -> ManyViewers:
    """``viewers`` SSE viewers of one stream, in CLIENT_PROCESSES processes, for ``seconds``."""
    events = round(RATE * seconds)
    shares = _split(viewers, CLIENT_PROCESSES)
    async with (
        _hub(stack, "fanout") as hub,
        _viewers(stack, "sse", hub, shares, url=web.url) as clients,
    ):
        await _live(web.url, hub, viewers)
        await _polls_waiting(stack.client, hub, 1, what="the web's upstream poll")
        watched = [web.process.pid, *(c.pid for c in clients)]
        before, began = [_cpu(pid) for pid in watched], (busy_seconds(), time.monotonic())
        await _publish(stack.client, hub, events)
        after, ended = [_cpu(pid) for pid in watched], (busy_seconds(), time.monotonic())
        took = ended[1] - began[1]
        cores = [(b - a) / took for a, b in zip(before, after, strict=True)]
        results = [await result(c, within=60) for c in clients]
        used = memory(web.process.pid)
    return ManyViewers(
        viewers,
        RATE,
        events,
        merge(results, shares),
        await polls(stack.client, hub),
        Cpu(cores[0], cores[1:], (ended[0] - began[0]) / took),
        used,
    )


async def naive_bridge(stack: Stack, viewers: int, *, seconds: float) -> NaiveBridge:
    """``viewers`` subscriptions of their own to one stream: how many of them get through."""
    events = round(RATE * seconds)
    shares = _split(viewers, CLIENT_PROCESSES)
    async with (
        _hub(stack, "naive") as hub,
        _viewers(stack, "subscribe", hub, shares) as readers,
    ):
        # As many polls as the server lets in; fewer if it lets in fewer.
        with contextlib.suppress(TimeoutError):
            await _polls_waiting(
                stack.client, hub, min(viewers, UPDATE_LIMIT), what="the first polls", within=30
            )
        await _publish(stack.client, hub, events)
        # Bounded: whoever has not finished by then is stopped and counted as stalled.
        results = [await result(r, within=30) for r in readers]
    return NaiveBridge(RATE, events, merge(results, shares), await polls(stack.client, hub))


# -- the parts --------------------------------------------------------------------
@contextlib.asynccontextmanager
async def _web(stack: Stack, *, max_viewers: int) -> AsyncIterator[_Web]:
    """``python -m bench.web`` with room for the viewers; stopped on the way out."""
    process = await stack.spawn(
        "bench.web",
        WEB_MAX_VIEWERS=str(max_viewers),
        # Every bench viewer comes from 127.0.0.1: the per-client cap must hold them all.
        WEB_CLIENT_MAX_VIEWERS=str(max_viewers),
        HEALTH_FILE=str(stack.workdir / "web.healthy"),
    )
    try:
        if process.stdout is None:
            raise RuntimeError("the web's stdout is not piped")
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line.startswith(b'{"ready"'):
            raise RuntimeError(f"bench.web did not start: {line[:200]!r} (see its log)")
        yield _Web(f"http://127.0.0.1:{json.loads(line)['port']}", process)
    finally:
        await _stop(process)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def _hub(stack: Stack, name: str) -> AsyncIterator[str]:
    """A fresh hub; closed on the way out, and terminated if it does not finish."""
    hub_id = f"sse-{name}-{uuid.uuid4().hex[:6]}"
    handle = await stack.client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=stack.task_queue
    )
    try:
        yield hub_id
    finally:
        await handle.signal(HubWorkflow.close)
        try:
            await asyncio.wait_for(handle.result(), 30)
        except TimeoutError:
            await handle.terminate("the bench is done with it")


@contextlib.asynccontextmanager
async def _viewers(
    stack: Stack, role: str, hub: str, shares: list[int], *, url: str = ""
) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """One ``bench.viewers`` process per share, each ready; any left running stopped after."""
    processes: list[asyncio.subprocess.Process] = []
    try:
        for viewers in shares:
            processes.append(
                await stack.spawn(
                    "bench.viewers", role, f"--hub={hub}", f"--viewers={viewers}", f"--url={url}"
                )
            )
        await _ready(*processes)
        yield processes
    finally:
        for process in processes:
            await _stop(process)


async def _ready(*processes: asyncio.subprocess.Process) -> None:
    """Wait for each process's ready line (its viewers connected, or started)."""
    for process in processes:
        if process.stdout is None:
            raise RuntimeError("the viewers' stdout is not piped")
        line = await asyncio.wait_for(process.stdout.readline(), CONNECT_WITHIN)
        if not line.startswith(b'{"ready"'):
            raise RuntimeError(f"expected the ready line, got {line[:300]!r}")


async def _live(url: str, hub: str, viewers: int) -> None:
    """Wait until the web holds every viewer, each caught up with its stream's head."""
    async with httpx.AsyncClient(base_url=url) as http:

        async def live() -> bool:
            status = (await http.get("/api/status")).json()
            held = sum(s["live_viewers"] for s in status["streams"] if s["workflow_id"] == hub)
            return bool(held == viewers)

        await eventually(live, what=f"{viewers} live viewers", within=CONNECT_WITHIN)


async def _polls_waiting(
    client: Client, hub: str, count: int, *, what: str, within: float = 60
) -> None:
    async def waiting() -> bool:
        return await in_flight(client, hub) >= count

    await eventually(waiting, what=f"{what} ({count} in flight)", within=within)


async def _publish(client: Client, hub: str, events: int) -> None:
    """``events`` stamps and a final one at RATE, each flushed on its own."""
    stream = WorkflowStreamClient.create(client, hub)
    topic = stream.topic(TOPIC, type=Stamp)
    async with stream:
        began = time.monotonic()
        for seq in range(events + 1):
            await asyncio.sleep(max(0.0, began + seq / RATE - time.monotonic()))
            topic.publish(Stamp(seq, time.time(), final=seq == events), force_flush=True)


def _split(total: int, parts: int) -> list[int]:
    """``total`` viewers over ``parts`` processes, as evenly as they go (none empty)."""
    parts = min(parts, total)
    size, extra = divmod(total, parts)
    return [size + (n < extra) for n in range(parts)]


def _cpu(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # it has already exited
        return float("nan")
