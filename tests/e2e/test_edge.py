"""The Durable Streams read protocol through the edge (nginx) in front of three web replicas.

The protocol's own clients are the test: the npm ``@durable-streams/client``
(in Node, tests/e2e/durable_client) and the PyPI ``durable-streams`` read a
pipeline run and a ticker through the edge, resume from a saved offset, and
see exactly what the subscriber's ledger holds; a replica killed mid-stream
costs a protocol reader nothing, neither a gap nor a repeat.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from durable_streams import astream

from services.shared.ledger import Event
from services.web.durable.offsets import Offset
from services.web.durable.offsets import parse as parse_offset
from testkit.waiting import eventually, wait_until
from tests.e2e.cli import compose, docker, subscriber_ledger
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

CLIENT = Path(__file__).resolve().parent / "durable_client"
REPLICAS = 3
Message = dict[str, Any]


@pytest.fixture(scope="module")
def npm_reader() -> Path:
    """The npm client, installed from its lock (CI runs on a fresh machine)."""
    if not (CLIENT / "node_modules" / "@durable-streams" / "client").is_dir():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"], cwd=CLIENT, check=True, timeout=600
        )
    return CLIENT / "read.mjs"


def test_the_edge_serves_the_dashboard_in_front_of_three_replicas(
    stack: Stack, dashboard_url: str
) -> None:
    def replicas() -> list[dict[str, Any]]:
        rows = compose("ps", "--format", "json", "web").stdout.splitlines()
        return [json.loads(r) for r in rows if r.strip()]

    stack.wait_until(
        "three healthy web replicas",
        lambda: [r["Health"] for r in replicas()] == ["healthy"] * REPLICAS,
    )
    published = [p for r in replicas() for p in r.get("Publishers") or [] if p.get("PublishedPort")]
    assert published == [], "only the edge has a host port"
    host, _, _ = dashboard_url.removeprefix("http://").rpartition(":")
    assert host == "127.0.0.1"


async def test_npm_and_pypi_clients_read_a_pipeline_run_as_the_ledger_holds_it(
    stack: Stack, dashboard_url: str, npm_reader: Path
) -> None:
    url = f"{dashboard_url}/v1/streams/pipeline"
    # npm: five messages, stop, then resume from the saved offset to the end.
    first, saved, _ = await _npm(npm_reader, url, "-1", "long-poll", stop_after=5)
    rest, end, closed = await _npm(npm_reader, url, saved, "long-poll")
    # PyPI: the same, from its own saved offset.
    head, pypi_saved = await _pypi(url, "-1", stop_after=5)
    tail, _ = await _pypi(url, pypi_saved)
    assert closed, "the npm client saw the stream close at the end of the run"
    for messages, last in ((first + rest, end), (head + tail, pypi_saved)):
        offsets = [m["offset"] for m in messages]
        assert offsets == list(range(len(offsets))), "no gap, no repeat"
        run_id = _chain(last)
        assert _as_ledger(messages) == _ledger_run(stack, run_id)


async def test_npm_and_pypi_clients_read_a_ticker_through_the_edge(
    stack: Stack, dashboard_url: str, npm_reader: Path
) -> None:
    url = f"{dashboard_url}/v1/streams/ticker"
    npm, _, closed = await _npm(npm_reader, url, "-1", "sse")  # SSE through the edge
    pypi, _ = await _pypi(url, "-1")
    fast = [t for t in stack.logs("ticker-fast") if t["event"] == "tick"]
    assert closed
    for messages in (npm, pypi):
        offsets = [m["offset"] for m in messages]
        # What truncation kept: the last ticks, contiguous, as the fast subscriber saw them.
        assert offsets == list(range(offsets[0], 40)) and offsets[0] > 0
        assert [m["data"]["number"] for m in messages] == offsets
        assert offsets == [t["offset"] for t in fast][offsets[0] :]
        assert messages[-1]["data"]["final"] is True


async def test_a_replica_killed_mid_stream_costs_a_reader_no_gap_and_no_repeat(
    stack: Stack, dashboard_url: str
) -> None:
    url = f"{dashboard_url}/v1/streams/pipeline"
    run_id = await _a_fresh_run(url)
    messages: list[Message] = []
    served_by: list[str] = []
    killed_at = 0
    async with astream(url, offset="-1", live="long-poll") as reading:
        async for batch in reading.iter_events(mode="json"):
            messages.extend(batch.data)
            served_by.append(reading.headers.get("x-served-by", ""))
            if not killed_at and len(messages) >= 3:
                killed_at = len(served_by)
                docker("kill", served_by[-1])  # the replica this stream is routed to
            if any(m["data"]["stage"] == "complete" for m in batch.data):
                break
    offsets = [m["offset"] for m in messages]
    assert offsets == list(range(len(offsets))), "no gap, no repeat across the kill"
    before, after = served_by[:killed_at], served_by[killed_at:]
    print(f"replica kill: {len(messages)} events in {len(served_by)} reads, by {served_by}")
    assert len(set(before)) == 1, f"one replica serves a stream: {served_by}"
    assert set(after) - set(before), f"after the kill another replica served: {served_by}"
    assert _as_ledger(messages) == _ledger_run(stack, run_id)


async def test_identical_long_polls_collapse_into_one_origin_request(dashboard_url: str) -> None:
    """Fifty viewers waiting at the same offset cost the origin one request (X-Cache-Status)."""
    viewers = 50
    async with httpx.AsyncClient(base_url=dashboard_url, timeout=90) as http:
        hub = "/v1/streams/hub-web"

        async def hub_exists() -> bool:
            if (await http.head(hub)).status_code == 404:
                await http.post("/api/hub/publish", json={})  # starts the hub
                return False
            return True

        await eventually(hub_exists, what="the dashboard's hub to exist")
        tail = (await http.head(hub)).headers["stream-next-offset"]
        polls = [
            asyncio.create_task(http.get(hub, params={"offset": tail, "live": "long-poll"}))
            for _ in range(viewers)
        ]
        published = await http.post("/api/hub/publish", json={})
        answers = await asyncio.gather(*polls)
    assert published.status_code in (202, 409), published.text  # 409: one is already running
    assert {a.status_code for a in answers} == {200}
    assert len({a.content for a in answers}) == 1 and answers[0].json()
    statuses = [a.headers["x-cache-status"] for a in answers]
    assert statuses.count("MISS") == 1, statuses  # the rest waited for it, or hit its copy


# -- the clients ------------------------------------------------------------------
async def _npm(
    script: Path, url: str, offset: str, live: str, *, stop_after: int | None = None
) -> tuple[list[Message], str, bool]:
    """Messages, the offset to resume from, and whether the stream closed."""
    args = ["node", str(script), url, offset, live, *([str(stop_after)] if stop_after else [])]
    process = await asyncio.create_subprocess_exec(
        *args, cwd=CLIENT, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=600)
    assert process.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    *items, last = lines
    return [i["message"] for i in items], last["offset"], last["closed"]


async def _pypi(
    url: str, offset: str, *, stop_after: int | None = None
) -> tuple[list[Message], str]:
    """Messages up to the stream's in-band end (or ``stop_after``), and the offset after them.

    The PyPI client knows no Stream-Closed; like the project's own readers, it
    stops on the terminal event (a pipeline's ``complete``, a ticker's final tick).
    """
    got: list[Message] = []
    async with astream(url, offset=offset, live="long-poll") as reading:
        async for batch in reading.iter_events(mode="json"):
            got.extend(batch.data)
            if (stop_after and len(got) >= stop_after) or any(_final(m) for m in batch.data):
                return got, batch.next_offset
    raise AssertionError(f"the stream ended without its terminal event after {got[-3:]}")


def _final(message: Message) -> bool:
    data = message["data"]
    return bool(data.get("final")) or data.get("stage") == "complete"


async def _a_fresh_run(url: str) -> str:
    """The chain of a pipeline run that has only begun: the next one, if need be."""

    async def begun() -> str | None:
        async with astream(url, offset="-1", live=False) as reading:
            messages = await reading.read_json()
            if messages and len(messages) < 10 and not any(_final(m) for m in messages):
                return _chain(reading.offset)
        return None

    # A run lasts minutes: the next one starts when the subscriber has recorded this one.
    return await eventually(begun, what="a pipeline run that has just begun", within=600)


# -- the reference: the subscriber's ledger ---------------------------------------
def _chain(token: str) -> str:
    offset = parse_offset(token)
    assert isinstance(offset, Offset), token
    return offset.chain  # a pipeline never continues as new: its chain is its run


def _as_ledger(messages: list[Message]) -> list[tuple[int, str, int, int]]:
    return [
        (m["offset"], m["data"]["stage"], m["data"]["step"], m["data"]["steps"]) for m in messages
    ]


def _ledger_run(stack: Stack, run_id: str) -> list[tuple[int, str, int, int]]:
    """The run's events as the subscriber recorded them, once it has recorded the whole run."""

    def recorded() -> list[Event] | None:
        ledger = subscriber_ledger()
        events = [r for r in ledger if isinstance(r, Event) and r.run_id == run_id]
        return events if events and events[-1].stage == "complete" else None

    events = wait_until(recorded, what=f"the ledger to hold run {run_id} to its end", within=600)
    return [(e.offset, e.stage, e.step, e.steps) for e in events]


def test_a_replica_at_a_new_address_is_routed_to_without_a_reload(
    stack: Stack, dashboard_url: str
) -> None:
    """Compose alone adds a fourth replica (a new address): the edge's watch lists it.

    nginx 1.26 reads an upstream's addresses only when it loads its config;
    deploy/edge/start.sh reads them again every few seconds and reloads.
    """
    scale = ("up", "--detach", "--no-deps", "--wait", "--scale")
    compose(*scale, f"web={REPLICAS}", "web", timeout=300)  # the one killed above is back
    before = _replica_hosts()
    compose(*scale, f"web={REPLICAS + 1}", "web", timeout=300)
    try:
        (added,) = _replica_hosts() - before
        # A quarter of all streams hash to the new replica: some of these do.
        ids = [f"no-such-stream-{n}" for n in range(40)]

        def served_by() -> set[str]:
            with httpx.Client(base_url=dashboard_url, timeout=30) as http:
                return {http.head(f"/v1/streams/{i}").headers["x-served-by"] for i in ids}

        wait_until(lambda: added in served_by(), what=f"the edge to route to {added}", within=60)
        assert served_by() <= before | {added}
    finally:
        compose(*scale, f"web={REPLICAS}", "web", timeout=300)
    remaining = _replica_hosts()
    with httpx.Client(base_url=dashboard_url, timeout=30) as http:
        # The replica that went is dropped too: every stream answers from one that is up.
        wait_until(
            lambda: (
                {http.head(f"/v1/streams/{i}").status_code for i in ids} == {404}
                and {http.head(f"/v1/streams/{i}").headers["x-served-by"] for i in ids} <= remaining
            ),
            what="the edge to drop the replica that went",
            within=60,
        )


def _replica_hosts() -> set[str]:
    """The web replicas' hostnames (what X-Served-By names): their short container ids."""
    return {line[:12] for line in compose("ps", "--quiet", "web").stdout.split()}
