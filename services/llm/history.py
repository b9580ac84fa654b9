"""A conversation read back from its workflow history: the answers, and what they cost.

The source of truth for "the workflow's result" of each turn is the
``stream_completion`` activity's recorded result, not anything published on
the stream: tests, chaos-llm and the bench compare rendered text with it.
The chain is walked back run by run through continue-as-new links.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client

from services.shared.models import STREAM_COMPLETION, Answer, CompletionInput


@dataclass
class Conversation:
    """What the chain of runs recorded, oldest run first."""

    answers: dict[int, Answer] = field(default_factory=dict)  # turn -> the activity's result
    attempts: dict[int, int] = field(default_factory=dict)  # turn -> attempts started
    runs: int = 0
    events: int = 0
    signals: int = 0  # publishes: one per delta batch
    updates: int = 0  # accepted Updates: every reader poll, every ask


async def chain(client: Client, workflow_id: str) -> list[list[HistoryEvent]]:
    """The events of every run of the chain that ends at the current run, oldest first."""
    runs: list[list[HistoryEvent]] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.insert(0, list(history.events))
        started = history.events[0].workflow_execution_started_event_attributes
        if not started.continued_execution_run_id:
            return runs
        run_id = started.continued_execution_run_id


async def read(client: Client, workflow_id: str) -> Conversation:
    """Answers, attempts and counts of the conversation ``workflow_id``."""
    convert = client.data_converter
    found = Conversation()
    for events in await chain(client, workflow_id):
        found.runs += 1
        found.events += len(events)
        scheduled: dict[int, int] = {}  # scheduled event id -> turn
        for event in events:
            if event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
                found.signals += 1
            elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
                found.updates += 1
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
                attrs = event.activity_task_scheduled_event_attributes
                if attrs.activity_type.name == STREAM_COMPLETION:
                    (request,) = await convert.decode(attrs.input.payloads, [CompletionInput])
                    scheduled[event.event_id] = request.turn
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                attrs_started = event.activity_task_started_event_attributes
                turn = scheduled.get(attrs_started.scheduled_event_id)
                if turn is not None:
                    found.attempts[turn] = attrs_started.attempt
            elif event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                attrs_done = event.activity_task_completed_event_attributes
                turn = scheduled.get(attrs_done.scheduled_event_id)
                if turn is not None:
                    (answer,) = await convert.decode(attrs_done.result.payloads, [Answer])
                    found.answers[turn] = answer
    return found
