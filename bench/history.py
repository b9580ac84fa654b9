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
