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

import contextlib
import tempfile
import time
from dataclasses import dataclass

from bench.delivery import Delivery, merge
from bench.fanout import (
    Web,
    all_live,
    cpu_or_nan,
    fresh_hub,
    output_to,
    polls_waiting,
    publish,
    split,
    viewer_processes,
    web_process,
)
from bench.history import Polls, polls
from bench.stack import Memory, Stack, busy_seconds, memory, result, stack

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
            with output_to(server_log.fileno()):
                s = await running.enter_async_context(stack())
            async with web_process(s, max_viewers=viewers + 100) as web:
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


# -- the three runs ---------------------------------------------------------------
async def browser_path(stack: Stack, web: Web, *, events: int) -> BrowserPath:
    """One SSE viewer and one direct reader of the same events, at RATE."""
    async with (
        fresh_hub(stack, "browser") as hub,
        viewer_processes(stack, "sse", hub, [1], url=web.url) as (viewer,),
        viewer_processes(stack, "subscribe", hub, [1]) as (direct,),
    ):
        await polls_waiting(stack.client, hub, 2, what="the web's and the direct reader's")
        await publish(stack.client, hub, events, rate=RATE)
        through_web = await result(viewer, within=60)
        straight = await result(direct, within=60)
    return BrowserPath(RATE, events, merge([through_web], [1]), merge([straight], [1]))


async def many_viewers(stack: Stack, web: Web, viewers: int, *, seconds: float) -> ManyViewers:
    """``viewers`` SSE viewers of one stream, in CLIENT_PROCESSES processes, for ``seconds``."""
    events = round(RATE * seconds)
    shares = split(viewers, CLIENT_PROCESSES)
    async with (
        fresh_hub(stack, "fanout") as hub,
        viewer_processes(stack, "sse", hub, shares, url=web.url) as clients,
    ):
        await all_live(web.url, hub, viewers)
        await polls_waiting(stack.client, hub, 1, what="the web's upstream poll")
        watched = [web.process.pid, *(c.pid for c in clients)]
        before, began = [cpu_or_nan(pid) for pid in watched], (busy_seconds(), time.monotonic())
        await publish(stack.client, hub, events, rate=RATE)
        after, ended = [cpu_or_nan(pid) for pid in watched], (busy_seconds(), time.monotonic())
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
    shares = split(viewers, CLIENT_PROCESSES)
    async with (
        fresh_hub(stack, "naive") as hub,
        viewer_processes(stack, "subscribe", hub, shares) as readers,
    ):
        # As many polls as the server lets in; fewer if it lets in fewer.
        with contextlib.suppress(TimeoutError):
            await polls_waiting(
                stack.client, hub, min(viewers, UPDATE_LIMIT), what="the first polls", within=30
            )
        await publish(stack.client, hub, events, rate=RATE)
        # Bounded: whoever has not finished by then is stopped and counted as stalled.
        results = [await result(r, within=30) for r in readers]
    return NaiveBridge(RATE, events, merge(results, shares), await polls(stack.client, hub))
