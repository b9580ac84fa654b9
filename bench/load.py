"""python -m bench.load ROLE: one publisher or reader of a benchmark, as its own process.

Each role prints one JSON object (its figures) as its last line of stdout:

* ``publish``: the project's publisher (``services.shared.headlines``): bounded
  batches, flow control with ``--depth`` windows in flight, held during a rollover;
* ``publish-defaults``: the library's defaults (``batch_interval`` 2 s, no
  ``max_batch_size``, no flow control): what a publisher gets out of the box;
* ``read``: follows a hub with ``services.shared.subscriptions.follow`` and
  audits each source's sequence: received, lost (jumped over), repeated;
* ``stages``: publishes a pipeline-shaped backlog (``StageEvent``) into a hub;
* ``read-per-event``: the subscriber's read path with one ledger write and
  fsync per event, the design before batching, for the catch-up baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from services.shared import logs
from services.shared.backoff import Backoff
from services.shared.connect import connect
from services.shared.headlines import (
    DEPTH,
    HEADLINES,
    WINDOW,
    publish_headlines,
    publisher_id,
    wait_applied,
)
from services.shared.ledger import Event, Ledger, Section
from services.shared.models import (
    FINAL_STAGE,
    NEWS_TOPIC,
    STAGE_TOPIC,
    WORK_STAGES,
    Headline,
    StageEvent,
)
from services.shared.settings import Settings
from services.shared.subscriptions import follow

PUBLISH_BATCH = 500


async def publish(client: Client, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    began = time.time()
    until = time.monotonic() + args.seconds if args.seconds else None
    settings = dataclasses.replace(settings, publisher_batch_size=PUBLISH_BATCH)
    published = await publish_headlines(
        client,
        args.hub,
        settings,
        events=args.events or None,
        until=until,
        rate=args.rate or None,
        source=args.source,
        depth=args.depth or None,
    )
    return {"published": published, "began": began, "ended": time.time()}


async def publish_defaults(
    client: Client, settings: Settings, args: argparse.Namespace
) -> dict[str, Any]:
    """As ``publish``, through a client with every default; paced, so its flusher runs."""
    began = time.time()
    until = time.monotonic() + args.seconds if args.seconds else None
    stream = WorkflowStreamClient.create(client, args.hub)
    news = stream.topic(NEWS_TOPIC, type=Headline)
    seq, start = 0, time.monotonic()
    async with stream:
        while (not args.events or seq < args.events) and (
            until is None or time.monotonic() < until
        ):
            news.publish(Headline(seq, HEADLINES[seq % len(HEADLINES)], source=args.source))
            seq += 1
            if seq % PUBLISH_BATCH == 0:
                await asyncio.sleep(max(0.0, start + seq / (args.rate or 1e9) - time.monotonic()))
        news.publish(Headline(seq, "end of stream", final=True, source=args.source))
    return {"published": seq, "began": began, "ended": time.time()}


async def read(client: Client, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """Every source's headlines until its final one, audited, with timings.

    Prints ``{"ready": true}`` just before its first poll, so the bench
    starts publishing only then; on SIGTERM it stops and reports so far.
    """
    audit = _Audit(args.sources)
    settings = dataclasses.replace(settings, poll_cooldown_seconds=args.cooldown)
    reading = asyncio.current_task()
    if reading is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, reading.cancel)
    print(json.dumps({"ready": True}), flush=True)
    try:
        async with follow(
            client, settings, args.hub, None, NEWS_TOPIC, result_type=Headline
        ) as items:
            async for item in items:
                if audit.add(item.offset, item.data):
                    break
    except asyncio.CancelledError:
        return {**audit.figures(), "stopped": "SIGTERM before every final headline"}
    return audit.figures()


class _Audit:
    """Each source's sequence: what arrived, what was jumped over, what came twice."""

    def __init__(self, sources: int) -> None:
        self.sources = sources
        self.due: dict[str, int] = {}
        self.finished: set[str] = set()
        self.received = self.lost = self.repeated = self.jumps = 0
        self.previous = -1
        self.first = self.last = 0.0
        self.cpu = time.process_time()

    def add(self, offset: int, headline: Headline) -> bool:
        """Count one item; True once every source's final headline is in."""
        expected = self.due.get(headline.source, 0)
        if headline.seq < expected:
            self.repeated += 1
            return False
        self.lost += headline.seq - expected
        self.due[headline.source] = headline.seq + 1
        self.jumps += self.previous >= 0 and offset != self.previous + 1
        self.previous = offset
        if headline.final:
            self.finished.add(headline.source)
            return len(self.finished) == self.sources
        self.received += 1
        self.last = time.time()
        self.first = self.first or self.last
        return False

    def figures(self) -> dict[str, Any]:
        done = len(self.finished) == self.sources
        return {
            "received": self.received,
            "lost": self.lost,
            "repeated": self.repeated,
            "jumps": self.jumps,
            "complete": done and self.lost == 0 and self.repeated == 0,
            "first": self.first,
            "last": self.last,
            "cpu_s": time.process_time() - self.cpu,
        }


async def stages(client: Client, settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    """A backlog of ``args.events`` stage events and the terminal one, as the pipeline's."""
    hub = client.get_workflow_handle(args.hub)
    backoff = Backoff(f"bench backlog of {args.hub}", settings.reconnect_attempts)
    stream = WorkflowStreamClient.create(client, args.hub, max_batch_size=PUBLISH_BATCH)
    topic, me = stream.topic(STAGE_TOPIC, type=StageEvent), publisher_id(stream)
    steps = args.events // len(WORK_STAGES)
    async with stream:
        for n in range(steps * len(WORK_STAGES)):
            topic.publish(StageEvent(WORK_STAGES[n // steps], n % steps + 1, steps))
            if (n + 1) % PUBLISH_BATCH == 0:
                await stream.flush()
            if (n + 1) % WINDOW == 0:
                await wait_applied(hub, me, backoff)
        topic.publish(StageEvent(FINAL_STAGE, 1, 1))
    await wait_applied(hub, me, backoff)
    return {"published": steps * len(WORK_STAGES) + 1}


async def read_per_event(
    client: Client, settings: Settings, args: argparse.Namespace
) -> dict[str, Any]:
    """Record a hub's stage events in a ledger, one write and one fsync per event."""
    ledger = Ledger.open(Path(args.ledger))
    handle = await client.get_workflow_handle(args.hub).describe()
    ledger.append(Section(args.hub, handle.run_id))
    began, recorded = time.monotonic(), 0
    try:
        async with follow(
            client, settings, args.hub, handle.run_id, STAGE_TOPIC, result_type=StageEvent
        ) as items:
            async for item in items:
                stage = item.data
                event = Event(
                    args.hub, handle.run_id, item.offset, stage.stage, stage.step, stage.steps
                )
                ledger.append(event)
                recorded += 1
                if stage.stage == FINAL_STAGE:
                    break
    finally:
        ledger.close()
    return {"recorded": recorded, "seconds": time.monotonic() - began}


ROLES = {
    "publish": publish,
    "publish-defaults": publish_defaults,
    "read": read,
    "stages": stages,
    "read-per-event": read_per_event,
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load")
    parser.add_argument("role", choices=sorted(ROLES))
    parser.add_argument("--hub", required=True, help="workflow id of the hub")
    parser.add_argument("--source", default="", help="publisher name, in each headline")
    parser.add_argument("--events", type=int, default=0, help="how many to publish (0: no limit)")
    parser.add_argument("--seconds", type=float, default=0, help="publish for this long")
    parser.add_argument("--rate", type=float, default=0, help="events per second (0: unpaced)")
    parser.add_argument(
        "--depth", type=int, default=0, help=f"publish: calls in flight (0: {DEPTH}, 1 paced)"
    )
    parser.add_argument(
        "--sources", type=int, default=1, help="readers stop after this many finals"
    )
    parser.add_argument("--cooldown", type=float, default=Settings().poll_cooldown_seconds)
    parser.add_argument("--ledger", default="", help="read-per-event: the ledger file")
    return parser.parse_args(argv)


async def main(argv: list[str]) -> dict[str, Any]:
    args = parse(argv)
    logs.configure("bench", fmt="json", level="warning")
    settings = Settings.from_env()
    client = await connect(settings)
    began = time.process_time()
    try:
        figures = await ROLES[args.role](client, settings, args)
    except Exception as err:  # a figure of its own: what stopped this role
        figures = {"error": f"{type(err).__name__}: {err}"}
    return {"role": args.role, **figures, "process_cpu_s": time.process_time() - began}


if __name__ == "__main__":
    outcome = asyncio.run(main(sys.argv[1:]))
    print(json.dumps(outcome), flush=True)
    logging.shutdown()
    # Skip interpreter teardown: it can abort with the SDK's threads alive
    # (temporalio/sdk-python#300), and the figures are already out.
    os._exit(0)
