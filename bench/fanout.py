"""The parts of a fan-out run, shared by the SSE bench and the edge bench.

The web service as its own process (``bench.web``), a fresh hub, viewer
processes (``bench.viewers``) and the publisher of stamped events, paced one
at a time with ``force_flush`` as ``bench.latency`` publishes; and the waits
that tell a run its viewers are in place before it publishes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from bench.history import in_flight
from bench.stack import Stack, cpu_seconds
from bench.viewers import TOPIC, Stamp
from services.shared.models import HubInput
from services.workflows import HubWorkflow
from testkit.waiting import eventually

CONNECT_WITHIN = 120.0  # seconds for every viewer to be connected and live


@contextlib.contextmanager
def output_to(fd: int) -> Iterator[None]:
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


@dataclass(frozen=True)
class Web:
    url: str
    process: asyncio.subprocess.Process


@contextlib.asynccontextmanager
async def web_process(stack: Stack, *, max_viewers: int) -> AsyncIterator[Web]:
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
        yield Web(f"http://127.0.0.1:{json.loads(line)['port']}", process)
    finally:
        await stop(process)


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
            await process.wait()


@contextlib.asynccontextmanager
async def fresh_hub(stack: Stack, name: str) -> AsyncIterator[str]:
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
async def viewer_processes(
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
        await all_ready(*processes)
        yield processes
    finally:
        for process in processes:
            await stop(process)


async def all_ready(*processes: asyncio.subprocess.Process) -> None:
    """Wait for each process's ready line (its viewers connected, or started)."""
    for process in processes:
        if process.stdout is None:
            raise RuntimeError("the viewers' stdout is not piped")
        line = await asyncio.wait_for(process.stdout.readline(), CONNECT_WITHIN)
        if not line.startswith(b'{"ready"'):
            raise RuntimeError(f"expected the ready line, got {line[:300]!r}")


async def all_live(url: str, hub: str, viewers: int) -> None:
    """Wait until the web holds every viewer, each caught up with its stream's head."""
    async with httpx.AsyncClient(base_url=url) as http:

        async def live() -> bool:
            status = (await http.get("/api/status")).json()
            held = sum(s["live_viewers"] for s in status["streams"] if s["workflow_id"] == hub)
            return bool(held == viewers)

        await eventually(live, what=f"{viewers} live viewers", within=CONNECT_WITHIN)


async def polls_waiting(
    client: Client, hub: str, count: int, *, what: str, within: float = 60
) -> None:
    async def waiting() -> bool:
        return await in_flight(client, hub) >= count

    await eventually(waiting, what=f"{what} ({count} in flight)", within=within)


async def publish(client: Client, hub: str, events: int, *, rate: float) -> None:
    """``events`` stamps and a final one at ``rate`` per second, each flushed on its own."""
    stream = WorkflowStreamClient.create(client, hub)
    topic = stream.topic(TOPIC, type=Stamp)
    async with stream:
        began = time.monotonic()
        for seq in range(events + 1):
            await asyncio.sleep(max(0.0, began + seq / rate - time.monotonic()))
            topic.publish(Stamp(seq, time.time(), final=seq == events), force_flush=True)


def split(total: int, parts: int) -> list[int]:
    """``total`` viewers over ``parts`` processes, as evenly as they go (none empty)."""
    parts = min(parts, total)
    size, extra = divmod(total, parts)
    return [size + (n < extra) for n in range(parts)]


def cpu_or_nan(pid: int) -> float:
    try:
        return cpu_seconds(pid)
    except OSError:  # it has already exited
        return float("nan")
