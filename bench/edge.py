"""python -m bench.edge: viewers through the edge (nginx) beside viewers straight on one web.

The edge is compose's own config (deploy/edge/nginx.conf, rendered for this
host by ``bench.edgeproxy``) in front of one ``bench.web`` process; the
baseline is the same viewers on a web process of their own, with nothing in
between. A stream is routed to one replica by its id, so one stream's
viewers meet one web process whatever the number of replicas: one is what
the bench runs. Two kinds of viewer (``bench.viewers``), each at 1, 1,000 and
TOP viewers of one stream, in CLIENT_PROCESSES processes:

* ``long-poll``: the Durable Streams read protocol, a catch-up read then
  ``live=long-poll`` after ``live=long-poll``. Through the edge, identical
  long-polls in flight wait for one origin request (``proxy_cache_lock``)
  and then read its cached answer;
* ``sse``: the dashboard's per-stream SSE (``/streams/{id}``), which the edge
  passes through unbuffered: one origin connection per viewer either way.

Each side publishes EVENTS stamped events at RATE, one at a time with
``force_flush``, to a fresh hub, a fresh web process and (edge) a fresh
nginx, and measures: publish-to-viewer latency and every viewer's audit;
requests that reached web per event (direct: every request the viewers
sent; edge: the access log's lines with an upstream); Temporal Updates per
event (polls accepted, from the hub's history); CPU of web, of nginx's
master and workers, of the viewer processes and of the machine while the
events were published; resident memory of web and of nginx at the end.

BENCH_SCALE scales the viewers (TOP is EDGE_VIEWERS, 10,000 unless set).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import resource
import time
from collections.abc import AsyncIterator

from bench.delivery import merge
from bench.edge_report import Cores, EdgeFigures, EdgeRun, Side, edge_tables
from bench.edgeproxy import Edge, edge
from bench.fanout import (
    Web,
    all_live,
    cpu_or_nan,
    fresh_hub,
    polls_waiting,
    publish,
    split,
    viewer_processes,
    web_process,
)
from bench.history import polls
from bench.stack import Stack, busy_seconds, memory, result, stack
from services.shared import logs
from services.shared.backoff import one_line

RATE = 2.0  # events/s: at 10,000 viewers, 20,000 deliveries a second on two cores
SECONDS = 20.0
TOP = 10_000  # viewers: the most this bench asks of the machine (EDGE_VIEWERS moves it)
# A long-poll viewer costs a Python event loop about one answer per event;
# four processes keep any one of them from lagging (their CPU is reported).
CLIENT_PROCESSES = 4
MODES = ("long-poll", "sse")
PATHS = ("direct", "edge")
FINISH_WITHIN = 90.0  # seconds after the last publish for every viewer to report


def sizes(scale: float) -> list[int]:
    top = int(os.environ.get("EDGE_VIEWERS", TOP))
    return sorted({1, max(2, round(1000 * scale)), max(2, round(top * scale))})


async def edge_bench(*, scale: float) -> EdgeFigures:
    """Every mode at every size, direct then through the edge, on one fresh dev server."""
    events = round(RATE * max(10.0, SECONDS * scale))
    runs = []
    async with stack() as s:
        for mode in MODES:
            for viewers in sizes(scale):
                direct, through = [await _tried(s, mode, viewers, p, events) for p in PATHS]
                runs.append(EdgeRun(mode, viewers, direct, through))
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return EdgeFigures(RATE, events, CLIENT_PROCESSES, limit, runs)


async def _tried(s: Stack, mode: str, viewers: int, path: str, events: int) -> Side:
    """``_side``, or, when it could not be run at all, a side whose every viewer failed, and why.

    The most viewers a machine holds is a figure too: a side that broke it
    must not take the others' figures with it.
    """
    try:
        return await _side(s, mode, viewers, path, events)
    except Exception as err:  # a figure of its own: what stopped this side
        why = f"the side could not run: {type(err).__name__}: {one_line(err)[:200]}"
        nothing = Cores(math.nan, math.nan, math.nan, math.nan)
        return Side(path, merge([{"error": why}], [viewers]), events, 0, 0, 0, nothing, None, None)


async def _side(s: Stack, mode: str, viewers: int, path: str, events: int) -> Side:
    """``viewers`` of one fresh hub, on a fresh web process, directly or through a fresh edge."""
    shares = split(viewers, CLIENT_PROCESSES)
    async with (
        web_process(s, max_viewers=viewers + 100) as web,
        _front(s, web, viewers, path) as front,
        fresh_hub(s, f"edge-{mode}-{path}") as hub,
        viewer_processes(s, mode, hub, shares, url=front.url if front else web.url) as clients,
    ):
        notes = []
        try:
            if mode == "sse":  # through the edge too: web holds the edge's connection for each
                await all_live(web.url, hub, viewers)
            await polls_waiting(s.client, hub, 1, what="the web's upstream poll")
        except TimeoutError as err:  # those that did connect are measured all the same
            notes.append(f"{err}; published all the same")
        before, began = _cpu(web, front, clients), time.monotonic()
        await publish(s.client, hub, events, rate=RATE)
        after, took = _cpu(web, front, clients), time.monotonic() - began
        results = [await result(c, within=FINISH_WITHIN) for c in clients]
        web_memory = memory(web.process.pid)
        edge_memory = front.memory() if front else None
        notes += front.alerts() if front else []
    delivery = merge(results, shares)
    sent = viewers if mode == "sse" else sum(int(r.get("requests", 0)) for r in results)
    origin = sent
    if front is not None:  # every request is in the access log, once it has ended
        needles = (f"/streams/{hub}?",) if mode == "sse" else (f"/{hub}?", "live=long-poll")
        sent, origin = front.requests(*needles)
    used = [(b - a) / took for a, b in zip(before, after, strict=True)]
    cores = Cores(used[0], used[1], sum(used[2:-1]), used[-1])
    accepted = (await polls(s.client, hub)).accepted
    return Side(
        path, delivery, events, sent, origin, accepted, cores, web_memory, edge_memory, notes
    )


@contextlib.asynccontextmanager
async def _front(s: Stack, web: Web, viewers: int, path: str) -> AsyncIterator[Edge | None]:
    """The edge in front of ``web`` on the edge side; nothing on the direct side."""
    if path == "direct":
        yield None
        return
    upstream = web.url.removeprefix("http://")
    run = s.workdir / f"edge-{upstream.rpartition(':')[2]}"
    async with edge(run, [upstream], clients=viewers) as e:
        yield e


def _cpu(web: Web, front: Edge | None, clients: list[asyncio.subprocess.Process]) -> list[float]:
    """CPU seconds so far: web, the edge, each viewer process, then the whole machine."""
    return [
        cpu_or_nan(web.process.pid),
        front.cpu_seconds() if front else 0.0,
        *(cpu_or_nan(c.pid) for c in clients),
        busy_seconds(),
    ]


async def main() -> None:
    logs.configure("bench", level="warning")
    figures = await edge_bench(scale=float(os.environ.get("BENCH_SCALE") or "1"))
    for title, rows in edge_tables(figures):
        print(f"bench: {title}", flush=True)
        for row in rows:
            print(f"bench:   {row}", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
