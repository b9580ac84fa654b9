"""python -m bench.viewers ROLE: many viewers of one stream in one process, as a browser would.

* ``sse``: each viewer is one Server-Sent Events connection to the web
  service, read as a browser tab's EventSource reads it (``bench.eventsource``);
* ``long-poll``: each viewer reads the Durable Streams protocol
  (``/v1/streams/{id}``: a catch-up read, then ``live=long-poll`` after
  ``live=long-poll``) on one kept-alive connection (``bench.longpoll``);
* ``subscribe``: each viewer is its own ``subscribe()`` on the hub, with the
  project's poll cooldown: the naive bridge (one Temporal subscription per
  viewer), and, with one viewer, the direct reader.

Events are :class:`Stamp` s that carry their publish time, so each viewer
measures its own latency (publish to receipt, on this machine's clock).
Every viewer audits its sequence: a viewer is complete when it got every
event, once, in order, up to the final one. The role prints
``{"ready": true}`` once its viewers are connected (``sse``: each has its
``hello``; ``long-poll``: its catch-up read answered) or started
(``subscribe``), then one JSON object with its figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import signal
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TextIO

from temporalio.client import Client

from bench import eventsource, longpoll
from bench.channel import figures_channel
from services.shared import logs
from services.shared.backoff import one_line
from services.shared.connect import connect
from services.shared.settings import Settings
from services.shared.subscriptions import subscription
from testkit.sse import SseEvent

TOPIC = "bench"
BIN_MS = 0.1  # latency histogram resolution
# The first events also pay for starting the subscription (as bench.latency).
WARM_UP = 5
_EXAMPLES = 5  # incomplete viewers described in the result, at most


@dataclass
class Stamp:
    """One benchmark event: its sequence number and when it was published (Unix time)."""

    seq: int
    sent: float
    final: bool = False


class _Viewer:
    """One viewer's audit of its sequence: what arrived, what was skipped, what came twice."""

    def __init__(self) -> None:
        self.due = 0
        self.received = self.lost = self.repeated = 0
        self.finished = False
        self.connected = False
        self.failure = ""

    def add(self, seq: int, final: bool) -> None:
        self.received += 1
        if seq < self.due:
            self.repeated += 1
            return
        self.lost += seq - self.due
        self.due = seq + 1
        self.finished = final

    @property
    def complete(self) -> bool:
        return self.finished and self.lost == 0 and self.repeated == 0

    def describe(self) -> str:
        state = "finished" if self.finished else self.failure or "still waiting at the end"
        return f"{state}; received {self.received}, lost {self.lost}, repeated {self.repeated}"


class _Figures:
    """What every viewer of this process saw: latencies (a histogram) and audits."""

    def __init__(self, viewers: int, channel: TextIO) -> None:
        self.viewers = [_Viewer() for _ in range(viewers)]
        self.channel = channel
        self.bins: Counter[int] = Counter()
        # Per event: its first and its last receipt here (ms after publish).
        self.spread: dict[int, tuple[float, float]] = {}
        self.connected = 0
        self.all_connected = asyncio.Event()
        self.connect_s = 0.0  # sse: from the first request to every viewer's hello
        self.requests = 0  # long-poll: the long-polls sent, all viewers together

    def ready(self) -> None:
        """Tell the bench this process's viewers are connected (or started)."""
        print(json.dumps({"ready": True}), file=self.channel, flush=True)

    def connect(self, viewer: _Viewer) -> None:
        if not viewer.connected:
            viewer.connected = True
            self.connected += 1
            if self.connected == len(self.viewers):
                self.all_connected.set()

    def receive(self, viewer: _Viewer, stamp: Stamp, now: float) -> None:
        if stamp.seq >= WARM_UP and not stamp.final:
            ms = (now - stamp.sent) * 1000
            self.bins[round(ms / BIN_MS)] += 1
            first, last = self.spread.get(stamp.seq, (ms, ms))
            self.spread[stamp.seq] = (min(first, ms), max(last, ms))
        viewer.add(stamp.seq, stamp.final)

    def fail(self, viewer: _Viewer, why: str) -> None:
        viewer.failure = why
        self.connect(viewer)  # if it never did, it will not now: do not wait for it

    def result(self) -> dict[str, Any]:
        failed = Counter(v.failure for v in self.viewers if v.failure and not v.complete)
        incomplete = [v for v in self.viewers if not v.complete]
        return {
            "viewers": len(self.viewers),
            "complete": len(self.viewers) - len(incomplete),
            "failed": dict(failed),
            "stalled": sum(1 for v in incomplete if not v.failure),
            "lost": sum(v.lost for v in self.viewers),
            "repeated": sum(v.repeated for v in self.viewers),
            "examples": [v.describe() for v in incomplete[:_EXAMPLES]],
            "connect_s": self.connect_s,
            "requests": self.requests,
            "bin_ms": BIN_MS,
            "latency_bins": sorted(self.bins.items()),
            "per_event": [[seq, *times] for seq, times in sorted(self.spread.items())],
        }


# -- sse: one EventSource-like connection per viewer ------------------------------
async def _sse_viewer(url: str, viewer: _Viewer, figures: _Figures) -> None:
    def on_event(event: SseEvent) -> bool:
        if event.event == TOPIC:
            figures.receive(viewer, Stamp(**event.json()), time.time())
            return viewer.finished
        if event.event == "hello":
            figures.connect(viewer)
        elif event.event in ("dropped", "end"):
            figures.fail(viewer, f"the server sent {event.event!r} before the final event")
            return True
        return False

    try:
        why = await eventsource.read(url, on_event)
    except OSError as err:
        why = f"{type(err).__name__}: {one_line(err)[:160]}"
    if why and not viewer.failure:
        figures.fail(viewer, why if viewer.connected else f"{why} (before its hello)")


async def _connect_all(
    figures: _Figures, each: Callable[[_Viewer], Coroutine[Any, Any, None]]
) -> None:
    """Every viewer's ``each`` at once; ready once all are connected; back once all end."""
    began = time.monotonic()
    async with asyncio.TaskGroup() as group:
        for viewer in figures.viewers:
            group.create_task(each(viewer))
        await figures.all_connected.wait()
        figures.connect_s = time.monotonic() - began
        figures.ready()


async def sse(args: argparse.Namespace, figures: _Figures) -> None:
    url = f"{args.url}/streams/{args.hub}?topics={TOPIC}"
    await _connect_all(figures, lambda viewer: _sse_viewer(url, viewer, figures))


# -- long-poll: the Durable Streams read protocol ---------------------------------
async def _long_poll_viewer(url: str, viewer: _Viewer, figures: _Figures) -> None:
    def on_messages(messages: list[dict[str, Any]]) -> bool:
        now = time.time()
        for message in messages:
            if message["topic"] == TOPIC:
                figures.receive(viewer, Stamp(**message["data"]), now)
        return viewer.finished

    try:
        why, polls = await longpoll.read(url, on_messages, lambda: figures.connect(viewer))
    except OSError as err:
        why, polls = f"{type(err).__name__}: {one_line(err)[:160]}", 0
    figures.requests += polls
    if why and not viewer.failure:
        figures.fail(viewer, why if viewer.connected else f"{why} (before its first long-poll)")


async def long_poll(args: argparse.Namespace, figures: _Figures) -> None:
    url = f"{args.url}/v1/streams/{args.hub}"
    await _connect_all(figures, lambda viewer: _long_poll_viewer(url, viewer, figures))


# -- subscribe: one Temporal subscription per viewer ------------------------------
async def _subscriber(
    client: Client, hub: str, cooldown: timedelta, viewer: _Viewer, figures: _Figures
) -> None:
    try:
        async with subscription(
            client, hub, None, TOPIC, result_type=Stamp, poll_cooldown=cooldown
        ) as items:
            async for item in items:
                figures.receive(viewer, item.data, time.time())
                if viewer.finished:
                    return
        figures.fail(viewer, "the subscription ended before the final event")
    except Exception as err:  # what a naive bridge would hand its viewer
        figures.fail(viewer, f"{type(err).__name__}: {one_line(err)[:200]}")


async def subscribe(args: argparse.Namespace, figures: _Figures) -> None:
    settings = Settings.from_env()
    client = await connect(settings)
    async with asyncio.TaskGroup() as group:
        for viewer in figures.viewers:
            group.create_task(
                _subscriber(client, args.hub, settings.poll_cooldown, viewer, figures)
            )
        figures.ready()  # there is no hello: the bench watches the hub's history instead


ROLES = {"sse": sse, "long-poll": long_poll, "subscribe": subscribe}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.viewers")
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--hub", required=True, help="workflow id of the hub")
    parser.add_argument("--viewers", type=int, default=1, help="viewers in this process")
    parser.add_argument("--url", default="", help="sse, long-poll: the base URL (web or edge)")
    return parser.parse_args(argv)


async def main(argv: list[str], channel: TextIO) -> dict[str, Any]:
    """Run the role until every viewer is done, or until SIGTERM; return the figures."""
    args = parse(argv)
    # One socket per viewer: thousands of them need more than the usual 1,024 descriptors.
    _, most = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (most, most))
    logs.configure("bench", fmt="json", level="warning")
    figures = _Figures(args.viewers, channel)
    began, cpu = time.monotonic(), time.process_time()
    work = asyncio.create_task(ROLES[args.role](args, figures))
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, work.cancel)
    stopped = ""
    try:
        await work
    except asyncio.CancelledError:
        stopped = "SIGTERM before every viewer finished"
    except Exception as err:  # a figure of its own: what stopped this role
        stopped = f"{type(err).__name__}: {one_line(err)[:200]}"
    wall, used = time.monotonic() - began, time.process_time() - cpu
    outcome = {"role": args.role, **figures.result(), "wall_s": wall, "cpu_s": used}
    return {**outcome, "stopped": stopped} if stopped else outcome


if __name__ == "__main__":
    figures_out = figures_channel()
    outcome = asyncio.run(main(sys.argv[1:], figures_out))
    print(json.dumps(outcome), file=figures_out, flush=True)
    logging.shutdown()
    # Skip interpreter teardown: it can abort with the SDK's threads alive
    # (temporalio/sdk-python#300), and the figures are already out.
    os._exit(0)
