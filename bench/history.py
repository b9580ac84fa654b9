"""What a hub's history holds, run by run: its cost, its largest payloads, its faults."""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client


@dataclass
class HubHistory:
    """Totals over every run of one hub (its continue-as-new chain)."""

    runs: int = 0
    events: int = 0  # history events
    bytes: int = 0
    updates: int = 0  # accepted Updates: polls and publishers' ``applied``
    signals: int = 0
    largest_signal: int = 0  # bytes: one publish batch
    largest_poll_reply: int = 0  # bytes: one Update result
    largest_carry: int = 0  # bytes: the stream handed to the next run
    run_events: list[int] = field(default_factory=list)
    run_bytes: list[int] = field(default_factory=list)
    task_failures: dict[str, int] = field(default_factory=dict)


async def hub_history(client: Client, hub_id: str) -> HubHistory:
    """Walk the hub's runs from its first one and add up what each holds."""
    first = (await client.get_workflow_handle(hub_id).describe()).raw_description
    run_id: str | None = first.workflow_execution_info.first_run_id
    total = HubHistory()
    while run_id:
        handle = client.get_workflow_handle(hub_id, run_id=run_id)
        events, size, run_id = 0, 0, None
        async for event in handle.fetch_history_events():
            events += 1
            size += event.ByteSize()
            run_id = _add(total, event) or run_id
        total.runs += 1
        total.events += events
        total.bytes += size
        total.run_events.append(events)
        total.run_bytes.append(size)
    return total


def _add(total: HubHistory, event: HistoryEvent) -> str | None:
    """Count one event into ``total``; the next run's id if it is the hand-over."""
    kind = event.event_type
    if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
        total.signals += 1
        size = event.workflow_execution_signaled_event_attributes.input.ByteSize()
        total.largest_signal = max(total.largest_signal, size)
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
        total.updates += 1
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
        reply = event.workflow_execution_update_completed_event_attributes.outcome
        total.largest_poll_reply = max(total.largest_poll_reply, reply.success.ByteSize())
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        carried = event.workflow_execution_started_event_attributes.input.ByteSize()
        total.largest_carry = max(total.largest_carry, carried)
    elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
        cause = event.workflow_task_failed_event_attributes.cause
        name = WorkflowTaskFailedCause.Name(cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")
        total.task_failures[name] = total.task_failures.get(name, 0) + 1
    elif kind == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
        total.task_failures["TIMED_OUT"] = total.task_failures.get("TIMED_OUT", 0) + 1
    elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        return event.workflow_execution_continued_as_new_event_attributes.new_execution_run_id
    return None


POLL_UPDATE = "__temporal_workflow_stream_poll"  # the library's poll Update


@dataclass(frozen=True)
class Polls:
    """Stream polls as the hub's history shows them, over every run."""

    peak_in_flight: int  # accepted and not yet completed, at most at once
    accepted: int


class _PollTally:
    """Polls accepted and not yet completed, event by event (one run's history)."""

    def __init__(self) -> None:
        self.waiting: set[str] = set()
        self.peak = self.accepted = 0

    def add(self, event: HistoryEvent) -> None:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.input.name == POLL_UPDATE:
                self.waiting.add(request.meta.update_id)
                self.accepted += 1
                self.peak = max(self.peak, len(self.waiting))
        elif event.HasField("workflow_execution_update_completed_event_attributes"):
            done = event.workflow_execution_update_completed_event_attributes.meta.update_id
            self.waiting.discard(done)


async def polls(client: Client, hub_id: str) -> Polls:
    """Peak polls in flight (Update accepted minus completed) and polls accepted, run by run.

    The outside observer's count, as tests/test_web_fanout.py takes it: what
    the server recorded, not what a reader says it did.
    """
    first = (await client.get_workflow_handle(hub_id).describe()).raw_description
    run_id: str | None = first.workflow_execution_info.first_run_id
    peak = accepted = 0
    while run_id:
        tally = _PollTally()
        handle = client.get_workflow_handle(hub_id, run_id=run_id)
        run_id = None  # unless this run continued as new
        async for event in handle.fetch_history_events():
            tally.add(event)
            if event.HasField("workflow_execution_continued_as_new_event_attributes"):
                attributes = event.workflow_execution_continued_as_new_event_attributes
                run_id = attributes.new_execution_run_id
        peak, accepted = max(peak, tally.peak), accepted + tally.accepted
    return Polls(peak, accepted)


async def in_flight(client: Client, hub_id: str) -> int:
    """Stream polls accepted and not completed in the hub's current run, as history stands."""
    tally = _PollTally()
    async for event in client.get_workflow_handle(hub_id).fetch_history_events():
        tally.add(event)
    return len(tally.waiting)
