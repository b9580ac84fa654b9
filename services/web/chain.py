"""A workflow id's runs grouped into chains by their continue-as-new links, and read from Temporal.

The bottom floor of the web: no state, only calls to Temporal.

**Chain identity.** Offsets are global along a continue-as-new chain (the
library carries its base offset into the next run), but any other new run
under the same workflow id - a new start, a retry, a cron run, a reset -
begins a log of its own. So a chain is named by the run id of its *first*
run, found by walking the continue-as-new links backwards: a run's started
event names the run it continued from, and that run's closing event must
name this run as the one it continued as new into. A link that is not
confirmed from both ends (a retry or cron run names its predecessor too; a
reset run carries a copy of its base run's started event) starts a new
chain. ``first_run_id`` is no help: it spans retries, cron runs and resets.

A position in a stream is ``(chain, offset)``, the offset being the next one
to read; ``<chain>:<offset>`` pins it exactly and is never shared by two logs.

The library, after a continue-as-new, polls the workflow id's *latest* run,
which may already belong to another chain; so each run is read through a
handle pinned to its id (with no client given to the stream client, so the
library cannot jump), and the next run is the one named by the closing event.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import timedelta
from typing import cast

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload, WorkflowExecution
from temporalio.api.enums.v1 import ContinueAsNewInitiator
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    GetWorkflowExecutionHistoryRequest,
    GetWorkflowExecutionHistoryReverseRequest,
)
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import RawValue
from temporalio.contrib.workflow_streams import (
    PollInput,
    PollResult,
    WorkflowStreamClient,
    WorkflowStreamItem,
)

POLL = "__temporal_workflow_stream_poll"  # the library's update and query name
# A chain longer than this is a loop, not a workflow.
MAX_HOPS = 10_000


class ChainTooLong(RuntimeError):
    """Following the links took more than MAX_HOPS runs."""


@dataclass(frozen=True)
class Position:
    """Where a reader stands in a stream: its chain and the next offset to read."""

    chain: str
    offset: int

    def __str__(self) -> str:
        return f"{self.chain}:{self.offset}"


@dataclass(frozen=True)
class Run:
    """One run of a workflow id, its chain, and its status when it was described."""

    workflow_id: str
    run_id: str
    chain: str
    status: WorkflowExecutionStatus | None


@dataclass(frozen=True)
class StreamEvent:
    """What a stream holds at one offset: its topic, its JSON text, its size in bytes."""

    offset: int
    topic: str
    data: str
    size: int = field(compare=False)


@dataclass(frozen=True)
class Page:
    """Retained events from a position on, and the offset after them (the log's end if all)."""

    events: list[StreamEvent]
    next_offset: int


async def status(
    client: Client, workflow_id: str, run_id: str | None
) -> tuple[str, WorkflowExecutionStatus | None]:
    """The run id and status (of the latest run when ``run_id`` is None); RPCError if absent."""
    description = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    return description.run_id, description.status


async def successor(client: Client, workflow_id: str, run_id: str) -> str | None:
    """The run that ``run_id`` continued as new into, from its closing event; None if none."""
    closing = await _edge_event(client, workflow_id, run_id, last=True)
    if closing is None:
        return None
    attributes = closing.workflow_execution_continued_as_new_event_attributes
    return attributes.new_execution_run_id or None


async def predecessor(client: Client, workflow_id: str, run_id: str) -> str | None:
    """The run that ``run_id`` says it continued from (by continue-as-new only), or None."""
    started = await _edge_event(client, workflow_id, run_id, last=False)
    if started is None:
        return None
    attributes = started.workflow_execution_started_event_attributes
    if attributes.initiator != ContinueAsNewInitiator.CONTINUE_AS_NEW_INITIATOR_WORKFLOW:
        return None  # a first start, a retry or a cron run: a log of its own
    return attributes.continued_execution_run_id or None


async def _edge_event(
    client: Client, workflow_id: str, run_id: str, *, last: bool
) -> HistoryEvent | None:
    """The run's first (started) or last (closing, once closed) history event."""
    execution = WorkflowExecution(workflow_id=workflow_id, run_id=run_id)
    if last:
        reverse = GetWorkflowExecutionHistoryReverseRequest(
            namespace=client.namespace, execution=execution, maximum_page_size=1
        )
        history = (
            await client.workflow_service.get_workflow_execution_history_reverse(reverse)
        ).history
    else:
        forward = GetWorkflowExecutionHistoryRequest(
            namespace=client.namespace, execution=execution, maximum_page_size=1
        )
        history = (await client.workflow_service.get_workflow_execution_history(forward)).history
    return history.events[0] if history.events else None


async def chain_of(client: Client, workflow_id: str, run_id: str) -> str:
    """The chain ``run_id`` belongs to: its first run, by links confirmed from both ends."""
    run = run_id
    for _ in range(MAX_HOPS):
        before = await predecessor(client, workflow_id, run)
        if before is None or await successor(client, workflow_id, before) != run:
            return run
        run = before
    raise ChainTooLong(f"{workflow_id}: the chain of run {run_id} is longer than {MAX_HOPS} runs")


async def chain_runs(client: Client, workflow_id: str, chain: str) -> list[str]:
    """Every run of the chain, first to last, by following its continue-as-new links forward."""
    runs = [chain]
    while (after := await successor(client, workflow_id, runs[-1])) is not None:
        if len(runs) >= MAX_HOPS:
            raise ChainTooLong(f"{workflow_id}: chain {chain} is longer than {MAX_HOPS} runs")
        runs.append(after)
    return runs


async def last_run(
    client: Client, workflow_id: str, chain: str
) -> tuple[str, WorkflowExecutionStatus | None]:
    """The chain's newest run and its status (RPCError NOT_FOUND if the chain is gone)."""
    runs = await chain_runs(client, workflow_id, chain)
    return await status(client, workflow_id, runs[-1])


async def read_retained(client: Client, run: Run, from_offset: int) -> Page:
    """One page (about 1 MB at most) of what the run still holds from ``from_offset``.

    A query, not an update: it costs no history and counts against no limit.
    The workflow answers from its retained base when ``from_offset`` was
    truncated away, so the first event's offset tells what was dropped; a
    ``next_offset`` below ``from_offset`` means the position is past the end.
    """
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    result = await handle.query(
        POLL, PollInput(topics=[], from_offset=from_offset), result_type=PollResult
    )
    # Items travel as base64 of the serialized Payload (the library's wire form).
    events = [event(item.offset, item.topic, _wire_payload(item.data)) for item in result.items]
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
            yield event(item.offset, item.topic, item.data.payload)


def event(offset: int, topic: str, payload: Payload | None) -> StreamEvent:
    """The stream event at ``offset``; its data is always valid JSON text."""
    data = _payload_json(payload)
    return StreamEvent(offset, topic, data, len(data.encode()))


def _wire_payload(data: str) -> Payload | None:
    try:
        return Payload.FromString(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError, DecodeError):
        return None


def _payload_json(payload: Payload | None) -> str:
    """The payload's JSON text as published (the default converter's json/plain).

    Anything else - protobuf, binary, encrypted, text that is not UTF-8 or not
    JSON - is described, not guessed at, so one odd event cannot stop a stream.
    """
    if payload is None:
        return json.dumps({"undecodable": "not a payload the library wrote"})
    encoding = payload.metadata.get("encoding", b"")
    if encoding == b"binary/null":
        return "null"
    described = {"encoding": encoding.decode(errors="replace"), "bytes": len(payload.data)}
    if encoding == b"json/plain":
        try:
            text = payload.data.decode()
            json.loads(text)
        except ValueError as err:  # UnicodeDecodeError and JSONDecodeError alike
            return json.dumps({**described, "undecodable": type(err).__name__})
        return text
    return json.dumps(described)
