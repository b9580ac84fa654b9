"""One workflow id's runs, grouped into continue-as-new chains, and read from Temporal.

Offsets are global along a continue-as-new chain (the library carries its
base offset), but a new run started under the same workflow id begins again
at 0. A chain is named by its first run id, which every run of the chain
reports, so ``<first run id>:<offset>`` pins a position exactly.

The library, after a continue-as-new, polls the workflow id's *latest* run,
which may already belong to another chain. So we never let it: each run is
read through a handle pinned to its id, and the next run of the chain is the
one named in the closing event of the run before.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryReverseRequest
from temporalio.client import Client, WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.common import RawValue
from temporalio.contrib.workflow_streams import (
    PollInput,
    PollResult,
    WorkflowStreamClient,
    WorkflowStreamItem,
)

# A run id is a UUID; the offset a whole number.
_POSITION = re.compile(r"^(?P<chain>[0-9A-Za-z-]{1,64}):(?P<offset>[0-9]{1,15})$")
_POLL = "__temporal_workflow_stream_poll"  # the library's update and query name
# A chain longer than this is a loop, not a workflow.
_MAX_HOPS = 10_000


@dataclass(frozen=True)
class Position:
    """The last event a viewer received: its chain and its offset."""

    chain: str
    offset: int

    def __str__(self) -> str:
        return f"{self.chain}:{self.offset}"

    @classmethod
    def parse(cls, text: str, *, source: str) -> Position:
        """Read ``<first run id>:<offset>``; ValueError names ``source`` and the form."""
        match = _POSITION.match(text.strip())
        if match is None:
            raise ValueError(
                f"{source} {text!r} is not an event id; use one this server sent, "
                "of the form <first run id>:<offset>, e.g. 01a214a6-7e73-734f-8c4d-68fe7c9b80d9:17"
            )
        return cls(match["chain"], int(match["offset"]))


@dataclass(frozen=True)
class Run:
    """One run of a workflow id, and the chain it belongs to."""

    workflow_id: str
    run_id: str
    chain: str
    status: WorkflowExecutionStatus | None

    @classmethod
    def of(cls, description: WorkflowExecutionDescription) -> Run:
        info = description.raw_description.workflow_execution_info
        # first_run_id is empty on servers older than 1.21: the run is its own chain.
        chain = info.first_run_id or description.run_id
        return cls(description.id, description.run_id, chain, description.status)

    @property
    def closed(self) -> bool:
        return self.status not in (None, WorkflowExecutionStatus.RUNNING)


async def describe(client: Client, workflow_id: str, run_id: str | None = None) -> Run:
    """The run (the latest one when ``run_id`` is None); RPCError NOT_FOUND if absent."""
    return Run.of(await client.get_workflow_handle(workflow_id, run_id=run_id).describe())


async def successor(client: Client, workflow_id: str, run_id: str) -> str:
    """The run that ``run_id`` continued as new into, from its closing event."""
    request = GetWorkflowExecutionHistoryReverseRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        maximum_page_size=1,
    )
    response = await client.workflow_service.get_workflow_execution_history_reverse(request)
    closing = response.history.events[0].workflow_execution_continued_as_new_event_attributes
    if not closing.new_execution_run_id:
        raise RuntimeError(f"run {run_id} of {workflow_id} has no continue-as-new event")
    return closing.new_execution_run_id


async def current_run(client: Client, workflow_id: str, chain: str) -> Run:
    """The chain's newest run: where its stream is now (RPCError NOT_FOUND if gone)."""
    latest = await describe(client, workflow_id)
    if latest.chain == chain:
        return latest
    run = await describe(client, workflow_id, chain)
    for _ in range(_MAX_HOPS):
        if run.status != WorkflowExecutionStatus.CONTINUED_AS_NEW:
            return run
        run = await describe(client, workflow_id, await successor(client, workflow_id, run.run_id))
    raise RuntimeError(f"chain {chain} of {workflow_id} is longer than {_MAX_HOPS} runs")


@dataclass(frozen=True)
class StreamEvent:
    """What a stream holds at one offset: its topic and its JSON text as published."""

    offset: int
    topic: str
    data: str


@dataclass(frozen=True)
class Page:
    """Retained events from a position on, and where the next page starts."""

    events: list[StreamEvent]
    next_offset: int


async def read_retained(client: Client, run: Run, from_offset: int) -> Page:
    """One page (about 1 MB at most) of what the run still holds from ``from_offset``.

    A query, not an update: it costs no history and counts against no limit.
    The workflow starts it at its retained base when ``from_offset`` was
    truncated away, so the first event's offset tells what was dropped.
    """
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    result = await handle.query(
        _POLL, PollInput(topics=[], from_offset=from_offset), result_type=PollResult
    )
    # Items travel as base64 of the serialized Payload (the library's wire form).
    events = [
        StreamEvent(
            item.offset, item.topic, payload_json(Payload.FromString(base64.b64decode(item.data)))
        )
        for item in result.items
    ]
    return Page(events, result.next_offset)


async def follow_run(
    client: Client, run: Run, from_offset: int, *, poll_cooldown: timedelta
) -> AsyncGenerator[StreamEvent]:
    """Every topic of one run from ``from_offset``, until the run closes and is drained.

    The stream client gets no Temporal client on purpose: then the library
    does not jump to the id's latest run on continue-as-new; the poll fails
    instead, and the caller follows the chain itself (see :func:`successor`).
    """
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    items = WorkflowStreamClient(handle).subscribe(
        [], from_offset=from_offset, result_type=RawValue, poll_cooldown=poll_cooldown
    )
    # subscribe() is an async generator; its declared type hides aclose().
    async with aclosing(cast(AsyncGenerator[WorkflowStreamItem[RawValue]], items)) as reading:
        async for item in reading:
            yield StreamEvent(item.offset, item.topic, payload_json(item.data.payload))


def payload_json(payload: Payload) -> str:
    """The payload's JSON text as published (the default converter's json/plain)."""
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"json/plain":
        return payload.data.decode()
    if encoding == b"binary/null":
        return "null"
    # Anything else (protobuf, binary, encrypted) is described, not guessed at.
    return json.dumps({"encoding": encoding.decode(errors="replace"), "bytes": len(payload.data)})
