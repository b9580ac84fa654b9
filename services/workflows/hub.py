"""Scenario 3: a passive hub that only hosts a stream until told to close.

Outside publishers feed it without pause, so it cannot wait for a quiet
moment to hand its stream to a fresh run (continue-as-new): it makes one.
When the server suggests a rollover, the hub holds each publisher at its
next flow-control update (``applied``), lets every reader that is reading
catch up with the now still log, then closes the run while nothing is on
its way, carrying the newest events that fit one payload.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Awaitable, Callable
from contextlib import suppress
from dataclasses import replace
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.contrib.workflow_streams import (
    PollInput,
    PollResult,
    PublishInput,
    WorkflowStream,
    WorkflowStreamState,
)
from temporalio.exceptions import ApplicationError

from services.shared.models import HubInput

# The stream's publish signal and poll update, as WorkflowStream registers
# them (its docstring names them). The hub wraps both to see who publishes
# and how far readers have got; the stream still does all the work.
PUBLISH_SIGNAL = "__temporal_workflow_stream_publish"
POLL_UPDATE = "__temporal_workflow_stream_poll"
# What readers are told while the run is closing; they retry on the next run.
STREAM_DRAINING = "StreamDraining"
# The carried stream is one JSON payload (HubInput): past 512 KiB the SDK and
# server warn, past 2 MiB the workflow task fails. Keep a margin below 512.
CARRY_BUDGET_BYTES = 448 * 1024
# One carried item in that JSON, beyond its base64 data and its JSON-quoted
# topic: {"data":"…","offset":0,"topic":…}, plus the comma between items.
ITEM_JSON_OVERHEAD = len('{"data":"","offset":0,"topic":},')
# A publisher heard from this recently is expected at ``applied`` (publishers
# call it at least every 0.5 s); a reader that got items is expected back as
# soon (its poll cooldown, and the time to handle a page).
LATELY = timedelta(seconds=1)
# How long a handover waits, in workflow time, for publishers to be held and
# readers to catch up; then it rolls over regardless (a publisher without flow
# control, a reader far behind: that one jumps, as after ``truncate``).
HANDOVER_WAIT = timedelta(seconds=5)


class Handover:
    """Who is still on the way: publishers not yet held, readers not yet caught up."""

    def __init__(self) -> None:
        self.heard: dict[str, datetime] = {}  # publisher id: its last batch
        self.held: set[str] = set()  # publisher ids waiting in ``applied``
        self.due_back: Counter[int] = Counter()  # offsets readers will poll from next
        self.due_at: dict[int, datetime] = {}

    def published(self, publisher_id: str, now: datetime) -> None:
        self.heard[publisher_id] = now

    def hold(self, publisher_id: str) -> None:
        self.held.add(publisher_id)

    def polled(self, from_offset: int) -> None:
        if self.due_back[from_offset] > 1:
            self.due_back[from_offset] -= 1
        else:  # back (or never expected): forget the offset
            self.due_back.pop(from_offset, None)
            self.due_at.pop(from_offset, None)

    def answered(self, result: PollResult, now: datetime) -> None:
        if result.items:  # the reader will be back from here
            self.due_back[result.next_offset] += 1
            self.due_at[result.next_offset] = now

    def settled(self, now: datetime) -> bool:
        """Every recent publisher is held, and every recent reader has come back.

        By id, not by count: a publisher held since it finished publishing
        must not stand in for another one still sending.
        """
        publishing = {p for p, at in self.heard.items() if now - at < LATELY}
        reading = any(now - self.due_at[o] < LATELY for o in self.due_back)
        return publishing <= self.held and not reading


@workflow.defn
class HubWorkflow:
    """Does no work of its own; outside publishers feed its stream."""

    @workflow.init
    def __init__(self, hub: HubInput) -> None:
        self.stream = WorkflowStream(prior_state=hub.stream_state)
        self._publish: Callable[[PublishInput], None] = _handler(
            workflow.get_signal_handler(PUBLISH_SIGNAL), PUBLISH_SIGNAL
        )
        self._poll: Callable[[PollInput], Awaitable[PollResult]] = _handler(
            workflow.get_update_handler(POLL_UPDATE), POLL_UPDATE
        )
        workflow.set_signal_handler(PUBLISH_SIGNAL, self._on_publish)
        workflow.set_update_handler(POLL_UPDATE, self._on_poll, validator=self._validate_poll)
        self.handover = Handover()
        self.closed = False
        self.rolling = False  # a handover has begun: hold publishers
        self.released = False  # it is done: release them, refuse polls

    @workflow.signal
    def close(self) -> None:
        self.closed = True

    @workflow.update
    async def applied(self, publisher_id: str, window: int = 0, depth: int = 1) -> bool:
        """Return once every publish sent before this update is in the log.

        Publishes are signals, stored before they are applied: publishers
        call this after each window of events, and send no more while
        ``depth`` of their calls are unanswered, so they never run ahead of
        the hub by more than ``depth`` windows. ``window`` numbers the
        caller's calls (a retry keeps its number), for the record.

        During a handover the hub holds a call until it is done, but only
        one whose publisher waits for it (``depth`` 1): a publisher with
        more calls in flight may be sending its next window. Such a call is
        answered True at once: stop now, and call again with ``depth`` 1.
        ``publisher_id`` is the one the caller's publish batches carry.
        """
        if not self.rolling or self.released:
            return False
        if depth > 1:
            return True
        self.handover.hold(publisher_id)
        await workflow.wait_condition(lambda: self.released)
        return False

    def _on_publish(self, batch: PublishInput) -> None:
        self.handover.published(batch.publisher_id, workflow.now())
        self._publish(batch)

    async def _on_poll(self, request: PollInput) -> PollResult:
        self.handover.polled(request.from_offset)
        result = await self._poll(request)
        self.handover.answered(result, workflow.now())
        return result

    def _validate_poll(self, _: PollInput) -> None:
        # As the stream's own validator, which this registration replaces.
        if self.released:
            raise ApplicationError(
                "Workflow pollers are detached for continue-as-new", type=STREAM_DRAINING
            )

    @workflow.run
    async def run(self, hub: HubInput) -> None:
        # Each poll is an Update (2,000 at most per run) and each publish a
        # signal in history, so a busy hub hands over to a fresh run when the
        # server suggests it (history length, size or updates).
        await workflow.wait_condition(
            lambda: self.closed or workflow.info().is_continue_as_new_suggested()
        )
        if not self.closed:
            await self._settle()
        self.released = True
        # Waiting polls return what they hold; new ones are refused as
        # StreamDraining, and readers retry them on the next run.
        self.stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self.closed:
            return
        # Bound and hand over in this one activation: no publish lands in between.
        state = bounded(self.stream.get_state(), CARRY_BUDGET_BYTES)
        info = workflow.info()
        workflow.logger.info(
            "rolling over",
            extra={
                "carried": len(state.log),
                "base_offset": state.base_offset,
                "held_publishers": len(self.handover.held),
                "history_length": info.get_current_history_length(),
                "history_bytes": info.get_current_history_size(),
            },
        )
        workflow.continue_as_new(HubInput(stream_state=state))

    async def _settle(self) -> None:
        """Hold publishers and let readers catch up, for HANDOVER_WAIT at most.

        The server refuses to close a run while a publish waits for it
        (UNHANDLED_COMMAND): the worker then replays the whole run, and
        polls fail meanwhile. And a reader left further behind than the
        carried log would jump. Both are avoided by closing a still run.
        """
        self.rolling = True
        began = workflow.now()
        while not (self.closed or self.handover.settled(workflow.now())):
            if workflow.now() - began >= HANDOVER_WAIT:
                return
            # The timeout also wakes us to let the gone quiet age out.
            with suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self.closed or self.handover.settled(workflow.now()), timeout=LATELY
                )


def _handler[F](found: F | None, name: str) -> F:
    if found is None:
        raise RuntimeError(f"WorkflowStream registered no {name!r} handler")
    return found


def bounded(state: WorkflowStreamState, budget: int) -> WorkflowStreamState:
    """The newest items of ``state`` whose carried JSON fits in ``budget`` bytes.

    A reader further behind than that at the moment of rollover jumps
    forward to the new base, exactly as after ``truncate``; one within it
    loses nothing.
    """
    size = carried_bytes(replace(state, log=[]))
    kept = 0
    for item in reversed(state.log):
        size += len(item.data) + len(json.dumps(item.topic)) + ITEM_JSON_OVERHEAD
        if size > budget:
            break
        kept += 1
    dropped = len(state.log) - kept
    return replace(state, log=state.log[dropped:], base_offset=state.base_offset + dropped)


def carried_bytes(state: WorkflowStreamState) -> int:
    """Size of the payload that carries ``state`` to the next run."""
    payload = workflow.payload_converter().to_payloads([HubInput(stream_state=state)])[0]
    return payload.ByteSize()
