"""Scenario 3: the hub and its publishers, judged by what separate readers receive.

Every assertion here is about what an outside observer sees: the items a
reader of its own got, and what the hub's history holds.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType, WorkflowTaskFailedCause
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.workflow_streams import PublishInput, WorkflowStream, WorkflowStreamClient
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from services.publisher import run_publisher
from services.shared.backoff import Backoff
from services.shared.headlines import (
    DEPTH,
    WINDOW,
    AbortedByRollover,
    aborted_by_closing_run,
    publish_headlines,
    wait_applied,
)
from services.shared.models import NEWS_TOPIC, Headline, HubInput
from services.shared.runner import Fatal
from services.shared.settings import Settings
from services.shared.subscriptions import follow
from services.worker import build_worker
from services.workflows import HubWorkflow
from services.workflows.hub import CARRY_BUDGET_BYTES, LATELY, Handover
from testkit.devserver import DevServer, dev_server
from testkit.waiting import eventually

# The server suggests continue-as-new from 4 MB of history by default; at 1 MB
# a hub rolls over after a few thousand events, within seconds.
SMALL_RUNS = {
    "limit.historySize.suggestContinueAsNew": 1_000_000,
    "limit.historyCount.suggestContinueAsNew": 100_000,
}
# The stream's publish signal (a name on the wire, in WorkflowStream's docstring).
PUBLISH_SIGNAL = "__temporal_workflow_stream_publish"
# What the SDK and server warn about: one payload over 512 KiB.
PAYLOAD_WARNING = 512 * 1024


@dataclass(frozen=True)
class Seen:
    """One item, as a reader of the test's own received it."""

    offset: int
    source: str
    seq: int
    final: bool


@dataclass
class Run:
    """One run of a hub, from its history."""

    run_id: str
    events: list[HistoryEvent]

    def of_type(self, kind: EventType.ValueType) -> list[HistoryEvent]:
        return [e for e in self.events if e.event_type == kind]

    @property
    def carried_bytes(self) -> int:
        (started,) = self.of_type(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
        return started.workflow_execution_started_event_attributes.input.payloads[0].ByteSize()

    @property
    def task_failures(self) -> list[str]:
        failed = [
            WorkflowTaskFailedCause.Name(e.workflow_task_failed_event_attributes.cause)
            for e in self.of_type(EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED)
        ]
        timed_out = self.of_type(EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT)
        return failed + ["TIMED_OUT"] * len(timed_out)

    @property
    def largest_signal(self) -> int:
        signals = self.of_type(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)
        return max(
            (e.workflow_execution_signaled_event_attributes.input.ByteSize() for e in signals),
            default=0,
        )


async def runs_of(client: Client, hub_id: str, first_run_id: str) -> list[Run]:
    """Every run of the hub, following the continue-as-new chain from the first."""
    runs: list[Run] = []
    run_id: str | None = first_run_id
    while run_id:
        handle = client.get_workflow_handle(hub_id, run_id=run_id)
        run = Run(run_id, [e async for e in handle.fetch_history_events()])
        runs.append(run)
        handed = run.of_type(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW)
        run_id = (
            handed[0].workflow_execution_continued_as_new_event_attributes.new_execution_run_id
            if handed
            else None
        )
    return runs


def task_failures(runs: list[Run]) -> list[str]:
    """Every workflow task failure or timeout in the hub's history, by cause.

    A deadlock (TMPRL1101), a payload or nondeterminism error would be one,
    and so would UNHANDLED_COMMAND: the server refusing to close a run while a
    publish is waiting for it. Publishers that call ``applied`` are held
    during the handover so that it never happens.
    """
    return [cause for run in runs for cause in run.task_failures]


async def read_until_final(
    client: Client,
    hub_id: str,
    *,
    sources: int,
    run_id: str | None = None,
    from_offset: int = 0,
    cooldown: float = Settings().poll_cooldown_seconds,
) -> list[Seen]:
    """Every item from ``from_offset`` until ``sources`` final headlines; waits for the hub."""
    if run_id is None:
        run_id = await eventually(lambda: _current_run(client, hub_id), what=f"{hub_id} to start")
    seen: list[Seen] = []
    finals = 0
    reader = dataclasses.replace(Settings(), reconnect_attempts=10, poll_cooldown_seconds=cooldown)
    async with follow(
        client, reader, hub_id, run_id, NEWS_TOPIC, result_type=Headline, from_offset=from_offset
    ) as items:
        async for item in items:
            h = item.data
            seen.append(Seen(item.offset, h.source, h.seq, h.final))
            finals += h.final
            if finals == sources:
                return seen
    raise AssertionError(
        f"stream of {hub_id} ended after {len(seen)} items, before {sources} finals"
    )


async def _current_run(client: Client, hub_id: str) -> str | None:
    try:
        return (await client.get_workflow_handle(hub_id).describe()).run_id
    except RPCError:
        return None  # not started yet


def per_source(seen: list[Seen]) -> dict[str, list[int]]:
    """The sequence numbers each source's headlines arrived with, in arrival order."""
    out: dict[str, list[int]] = {}
    for s in seen:
        out.setdefault(s.source, []).append(s.seq)
    return out


# -- the hub's decisions and the publisher's retries, on their own ----------------


def test_a_publisher_held_in_applied_does_not_stand_in_for_another_still_sending() -> None:
    """The handover closes the run only once every publisher heard lately is held, by id."""
    began = datetime(2026, 1, 1, tzinfo=UTC)
    handover = Handover()
    handover.published("finished", began)
    handover.hold("finished")  # its last batch sent, it waits in ``applied``
    now = began + LATELY + timedelta(milliseconds=500)  # "finished" is no longer recent
    handover.published("sending", now - timedelta(milliseconds=100))
    assert not handover.settled(now)  # 1 held, 1 sending: a count would call this settled
    handover.hold("sending")
    handover.hold("sending")  # a retried call is still one publisher
    assert handover.settled(now)
    handover.published("late", now)
    assert not handover.settled(now)


async def test_an_update_a_rollover_cut_short_is_retried_within_the_budget_after_a_delay() -> None:
    """What the server answers an update the hub's closing run had not taken yet.

    NOT_FOUND would read as "the run is gone"; it must be retried instead, on
    RECONNECT_ATTEMPTS' budget and the shared delay, and say what happened.
    """
    aborted = RPCError(
        "workflow update was aborted by closing workflow", RPCStatusCode.NOT_FOUND, b""
    )
    gone = RPCError("workflow not found for ID: hub-1", RPCStatusCode.NOT_FOUND, b"")
    assert aborted_by_closing_run(aborted) and not aborted_by_closing_run(gone)
    backoff = Backoff("hub-1 flow control", attempts=1, base=0.01)
    with capture_logs() as logs:
        await backoff.failed(AbortedByRollover(aborted))
        with pytest.raises(Fatal) as caught:
            await backoff.failed(AbortedByRollover(aborted))
    retries = [line for line in logs if line["event"].endswith("retrying")]
    assert [(r["attempt"], r["retry_in_s"]) for r in retries] == [(1, 0.01)]
    assert "the hub's run closed before taking the update" in retries[0]["error"]
    assert str(caught.value).startswith(
        "hub-1 flow control: still failing after 1 retries: the hub's run closed"
    )


@workflow.defn(name="BrokenHub")
class BrokenHub:
    """A hub whose every ``applied`` fails the workflow task that runs it (a bug, say)."""

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    async def applied(self, publisher_id: str, window: int = 0, depth: int = 1) -> None:
        raise RuntimeError(f"the workflow task fails (publisher {publisher_id})")


async def test_flow_control_that_keeps_failing_gives_up_on_its_budget_after_a_delay(
    client: Client, task_queue: str
) -> None:
    """The server answers each ``applied`` WorkflowNotReady, as for a rollover's refused
    task, but for good. The publisher must retry on its budget (RECONNECT_ATTEMPTS, here 1)
    after the shared delay, then say what failed; not 20 tries at once, blaming rollovers.
    """
    runner = UnsandboxedWorkflowRunner()  # a workflow of this test module's own
    async with Worker(client, task_queue=task_queue, workflows=[BrokenHub], workflow_runner=runner):
        hub = await client.start_workflow(
            BrokenHub.run, id=f"broken-{task_queue}", task_queue=task_queue
        )
        # One retry: each call waits some 20 s for the failing task before the answer.
        backoff = Backoff(f"{hub.id} flow control", attempts=1)
        try:
            with capture_logs() as logs, pytest.raises(Fatal) as caught:
                await wait_applied(client.get_workflow_handle(hub.id), "p1", backoff)
        finally:
            await hub.terminate("test over")
    retries = [line for line in logs if line["event"].endswith("retrying")]
    assert [(r["attempt"], r["of"], r["retry_in_s"]) for r in retries] == [(1, 1, 0.5)]
    assert str(caught.value).startswith(
        f"{hub.id} flow control: still failing after 1 retries: Unable to perform workflow "
        "execution update due to Workflow Task in failed state"
    )


@workflow.defn(name="HoldingHub")
class HoldingHub:
    """A hub that takes publishes but answers no ``applied``: a handover that never ends."""

    @workflow.init
    def __init__(self) -> None:
        self.stream = WorkflowStream()

    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: False)

    @workflow.update
    async def applied(self, publisher_id: str, window: int = 0, depth: int = 1) -> bool:
        await workflow.wait_condition(lambda: False)
        return False


async def test_a_publisher_keeps_depth_calls_in_flight_and_a_cancel_gets_through_them(
    client: Client, settings: Settings, task_queue: str
) -> None:
    """The hub answers no call. A publisher that waited for each would stop at its
    first; this one publishes on until DEPTH calls are unanswered, then stops. Cancelled
    there, it returns at once, leaving no call running (the hub would never end one).
    """
    assert DEPTH >= 2, "a publisher keeps more than one flow-control call in flight"
    runner = UnsandboxedWorkflowRunner()  # a workflow of this test module's own
    async with Worker(
        client, task_queue=task_queue, workflows=[HoldingHub], workflow_runner=runner
    ):
        hub = await client.start_workflow(
            HoldingHub.run, id=f"holding-{task_queue}", task_queue=task_queue
        )
        publishing = asyncio.create_task(
            publish_headlines(client, hub.id, settings, events=1_000_000, source="a")
        )
        try:
            waiting = await eventually(
                lambda: _held_calls(client, hub.id, at_least=DEPTH), what=f"{DEPTH} calls"
            )
            publishing.cancel()
            async with asyncio.timeout(60):  # a guard against a hang, not a measure
                with pytest.raises(asyncio.CancelledError):
                    await publishing
            left = [t for t in asyncio.all_tasks() if t.get_name().startswith(f"{hub.id} applied")]
            runs = await runs_of(client, hub.id, hub.result_run_id or "")
        finally:
            publishing.cancel()  # if the wait failed: no publisher left behind
            await hub.terminate("test over")
    assert left == []
    assert [w for _, w in waiting] == list(range(1, DEPTH + 1))  # none answered, none more
    assert [w for _, w in applied_calls(client, runs[0])] == list(range(1, DEPTH + 1))
    logged = logged_headlines(client, runs)
    assert [h.seq for h in logged] == list(range(len(logged)))  # a prefix, in order, no final
    assert len(logged) <= DEPTH * WINDOW  # no more than DEPTH windows ahead of the hub


async def _held_calls(
    client: Client, hub_id: str, *, at_least: int
) -> list[tuple[str, int]] | None:
    """The ``applied`` calls the hub holds, once there are ``at_least``."""
    events = [e async for e in client.get_workflow_handle(hub_id).fetch_history_events()]
    calls = applied_calls(client, Run("", events))
    return calls if len(calls) >= at_least else None


def applied_calls(client: Client, run: Run) -> list[tuple[str, int]]:
    """The ``applied`` calls accepted in ``run`` and not answered: (publisher id, window)."""
    last: dict[str, tuple[str, int]] = {}
    for last in _unanswered(client, run):  # noqa: B007 (the state after the last event)
        pass
    return list(last.values())


def applied_in_flight(client: Client, runs: list[Run]) -> dict[str, int]:
    """For each publisher, the most distinct windows it had unanswered in ``applied`` at once.

    The server's record of it: each call's acceptance and completion in the
    hub's history (a retried call is the same window).
    """
    peak: dict[str, int] = {}
    for run in runs:
        for waiting in _unanswered(client, run):
            for publisher in {p for p, _ in waiting.values()}:
                windows = {w for p, w in waiting.values() if p == publisher}
                peak[publisher] = max(peak.get(publisher, 0), len(windows))
    return peak


def _unanswered(client: Client, run: Run) -> Iterator[dict[str, tuple[str, int]]]:
    """``run``'s ``applied`` calls not answered, by update id, after each of its events.

    One dict, updated in place: (publisher id, window) for each call.
    """
    converter = client.data_converter.payload_converter
    waiting: dict[str, tuple[str, int]] = {}
    for event in run.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            request = event.workflow_execution_update_accepted_event_attributes.accepted_request
            if request.input.name == "applied":
                args = converter.from_payloads(request.input.args.payloads, [str, int, int])
                waiting[request.meta.update_id] = (args[0], args[1])
        elif event.HasField("workflow_execution_update_completed_event_attributes"):
            waiting.pop(
                event.workflow_execution_update_completed_event_attributes.meta.update_id, None
            )
        yield waiting


# -- on the session's server (default limits) ----------------------------------


@pytest.mark.usefixtures("worker")
async def test_publisher_delivers_every_headline_once(client: Client, settings: Settings) -> None:
    hub_id = f"hub-{settings.task_queue}"
    settings = dataclasses.replace(
        settings, hub_workflow_id=hub_id, publisher_events=25, publisher_batch_size=10
    )
    reader = asyncio.create_task(read_until_final(client, hub_id, sources=1))
    await run_publisher(client, settings)
    seen = await reader
    assert [(s.offset, s.seq, s.final) for s in seen] == [
        *((i, i, False) for i in range(25)),
        (25, 25, True),
    ]


@pytest.mark.usefixtures("worker")
async def test_a_failing_reader_stops_the_publisher_at_once(
    client: Client, settings: Settings
) -> None:
    """The publisher's own reader and its publishing share one task group.

    A headline out of place makes the reader fail; the publishing must stop
    then, not after all of PUBLISHER_EVENTS went out.
    """
    hub_id = f"hub-{settings.task_queue}"
    events = 1_000_000
    settings = dataclasses.replace(settings, hub_workflow_id=hub_id, publisher_events=events)
    publisher = asyncio.create_task(run_publisher(client, settings))
    offset = WorkflowStreamClient.create(client, hub_id)
    reached: int = await eventually(lambda: _offset_after(offset, 1000), what="1,000 headlines")
    async with WorkflowStreamClient.create(client, hub_id) as intruder:
        intruder.topic(NEWS_TOPIC, type=Headline).publish(Headline(7, "out of place"))
    with pytest.raises(Fatal, match="headline 7 from '' arrived"):
        await publisher
    published = await offset.get_offset()
    await client.get_workflow_handle(hub_id).terminate("test over")
    print(f"failing reader: {published} of {events} headlines went out")
    assert reached <= published < events // 10, f"{published} went out after the reader failed"


async def _offset_after(stream: WorkflowStreamClient, offset: int) -> int | None:
    try:
        now = await stream.get_offset()
    except RPCError:
        return None  # not started yet
    return now if now > offset else None


@pytest.mark.usefixtures("worker")
async def test_burst_of_20000_arrives_complete_in_bounded_signals(
    client: Client, settings: Settings
) -> None:
    """An unbounded burst would go out as one signal (``max_batch_size`` only wakes
    the flusher; a loop that never yields never lets it run): a 20,000-event
    one made the workflow task exceed its 2 s deadlock timeout (TMPRL1101).

    The hub rolls over under this burst, so what it logged is read back from
    its history, run by run, rather than by a reader that could fall behind.
    """
    events = 20_000
    hub_id = f"burst-{settings.task_queue}"
    settings = dataclasses.replace(settings, hub_workflow_id=hub_id, publisher_events=events)
    await run_publisher(client, settings)

    first = (await client.get_workflow_handle(hub_id).describe()).raw_description
    runs = await runs_of(client, hub_id, first.workflow_execution_info.first_run_id)
    logged = logged_headlines(client, runs)
    signals = sum(len(r.of_type(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED)) for r in runs)
    largest = max(r.largest_signal for r in runs)
    print(f"burst: {events} events in {signals} signals over {len(runs)} runs, largest {largest} B")
    assert [(h.seq, h.final) for h in logged] == [(i, i == events) for i in range(events + 1)]
    assert task_failures(runs) == []
    assert signals >= events // settings.publisher_batch_size
    assert largest < PAYLOAD_WARNING


@pytest.mark.usefixtures("worker")
async def test_a_burst_cancelled_mid_window_leaves_a_prefix_and_the_hub_serving_others(
    client: Client, settings: Settings
) -> None:
    """Cancelled while it sends its second window, its first call in flight or just
    answered: the cancel gets through, no call is left running, what went out is a
    prefix of its headlines, and the hub answers the next publisher as before.
    """
    hub_id = f"cancelled-{settings.task_queue}"
    hub = await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    publishing = asyncio.create_task(
        publish_headlines(client, hub_id, settings, events=1_000_000, source="a")
    )
    offset = WorkflowStreamClient.create(client, hub_id)
    await eventually(lambda: _offset_after(offset, WINDOW + WINDOW // 2), what="1.5 windows")
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing
    left = [t for t in asyncio.all_tasks() if t.get_name().startswith(f"{hub_id} applied")]
    assert await publish_headlines(client, hub_id, settings, events=10, source="b") == 10
    await hub.signal(HubWorkflow.close)
    await hub.result()

    runs = await runs_of(client, hub_id, hub.result_run_id or "")
    logged = logged_headlines(client, runs)
    a = [(h.seq, h.final) for h in logged if h.source == "a"]
    b = [(h.seq, h.final) for h in logged if h.source == "b"]
    print(f"cancelled burst: {len(a)} headlines went out before the cancel")
    assert left == []
    assert len(a) > WINDOW + WINDOW // 2
    assert a == [(i, False) for i in range(len(a))]
    assert b == [(i, i == 10) for i in range(11)]
    assert task_failures(runs) == []


def logged_headlines(client: Client, runs: list[Run]) -> list[Headline]:
    """The headlines the hub's runs took in, in order, from their publish signals.

    A batch sent again (same publisher and sequence) is in history twice but
    in the log once, as the stream deduplicates it; so here too.
    """
    converter = client.data_converter.payload_converter
    last: dict[str, int] = {}
    headlines: list[Headline] = []
    for run in runs:
        for event in run.of_type(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED):
            signal = event.workflow_execution_signaled_event_attributes
            if signal.signal_name != PUBLISH_SIGNAL:
                continue
            batch = converter.from_payloads(signal.input.payloads, [PublishInput])[0]
            if batch.sequence <= last.get(batch.publisher_id, 0):
                continue
            last[batch.publisher_id] = batch.sequence
            for entry in batch.items:
                payload = Payload.FromString(base64.b64decode(entry.data))
                headlines.append(converter.from_payload(payload, Headline))
    return headlines


# -- on a server of our own, whose runs are small ------------------------------


@pytest.fixture(scope="module")
async def small_runs() -> AsyncIterator[DevServer]:
    async with dev_server(dynamic_config=SMALL_RUNS) as server:
        yield server


@pytest.fixture
async def small_client(small_runs: DevServer, task_queue: str) -> AsyncIterator[Client]:
    async with build_worker(small_runs.client, task_queue):
        yield small_runs.client


async def test_continuous_publishers_roll_the_hub_over_and_a_reader_that_keeps_up_misses_nothing(
    small_client: Client, settings: Settings
) -> None:
    """Three publishers never pause; the hub rolls over twice or more under them."""
    client, sources, events = small_client, ("a", "b", "c"), 4000
    hub_id = f"hub-{settings.task_queue}"
    hub = await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    settings = dataclasses.replace(settings, publisher_batch_size=100)
    reader = asyncio.create_task(read_until_final(client, hub_id, sources=len(sources)))
    async with asyncio.TaskGroup() as group:
        for source in sources:
            publishing = publish_headlines(
                client, hub_id, settings, events=events, rate=1000, source=source
            )
            group.create_task(publishing)
    seen = await reader
    await hub.signal(HubWorkflow.close)
    await hub.result()

    runs = await runs_of(client, hub_id, hub.result_run_id or "")
    largest = max(r.carried_bytes for r in runs)
    print(f"continuous: {len(runs) - 1} rollovers, largest carry {largest} B")
    assert len(runs) >= 3, "the hub must have rolled over at least twice"
    assert per_source(seen) == {s: list(range(events + 1)) for s in sources}
    assert [s.offset for s in seen] == list(range(len(seen)))  # never a jump
    assert task_failures(runs) == []
    assert largest <= CARRY_BUDGET_BYTES


async def test_one_publishers_burst_is_pipelined_across_rollovers_and_logged_once_in_order(
    small_client: Client, settings: Settings
) -> None:
    """One publisher, unpaced, never more than DEPTH calls in flight. At each rollover
    the hub answers a call that has others behind it "stop", and holds the next, which
    waits alone. What the hub logged is read back from its history, run by run (a
    reader could fall behind a burst).
    """
    client, events = small_client, 20_000
    hub_id = f"burst-{settings.task_queue}"
    hub = await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    await publish_headlines(client, hub_id, settings, events=events, source="a")
    await hub.signal(HubWorkflow.close)
    await hub.result()

    runs = await runs_of(client, hub_id, hub.result_run_id or "")
    logged = logged_headlines(client, runs)
    in_flight = applied_in_flight(client, runs)
    stops = told_to_stop(client, runs)
    print(f"pipelined burst: {len(runs) - 1} rollovers, {stops} stops, in flight {in_flight}")
    assert len(runs) >= 3, "the hub must have rolled over at least twice"
    assert [(h.seq, h.final) for h in logged] == [(i, i == events) for i in range(events + 1)]
    assert 1 <= max(in_flight.values()) <= DEPTH
    assert stops >= 1
    assert task_failures(runs) == []


def told_to_stop(client: Client, runs: list[Run]) -> int:
    """How many ``applied`` calls the hub answered "stop" (True), over every run."""
    converter = client.data_converter.payload_converter
    stops = 0
    for run in runs:
        for event in run.of_type(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED):
            outcome = event.workflow_execution_update_completed_event_attributes.outcome
            answer = outcome.success.payloads
            stops += bool(answer) and converter.from_payloads(answer)[0] is True
    return stops


async def test_the_publisher_paced_by_its_reader_delivers_a_burst_across_rollovers(
    small_client: Client, settings: Settings
) -> None:
    """The publisher service's way: its own reader paces it (read_headlines fails on
    any headline out of place), its calls pipelined, the hub rolling over under it.
    """
    client, events = small_client, 20_000
    hub_id = f"paced-{settings.task_queue}"
    settings = dataclasses.replace(settings, hub_workflow_id=hub_id, publisher_events=events)
    assert await run_publisher(client, settings) == events
    first = (await client.get_workflow_handle(hub_id).describe()).raw_description
    runs = await runs_of(client, hub_id, first.workflow_execution_info.first_run_id)
    print(f"reader-paced burst: {len(runs) - 1} rollovers")
    assert len(runs) >= 3, "the hub must have rolled over at least twice"
    assert task_failures(runs) == []


async def test_rollover_carries_what_fits_and_a_reader_behind_within_it_loses_nothing(
    small_client: Client, settings: Settings
) -> None:
    """Readers come back after the rollover from where they were when it happened,
    pinned to the first run, as the subscriber resumes: the library follows the
    continue-as-new chain. One was 50 events behind the end: every event is
    still there for it. One was far behind: it jumps to the first event
    carried, exactly as after ``truncate``.
    """
    client, events = small_client, 2000
    hub_id = f"hub-{settings.task_queue}"
    hub = await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    first_run = hub.result_run_id or ""
    # 2,000 headlines of 400 bytes: about 1.3 MB of signals, one rollover. A
    # plain client, without flow control: the hub waits for it in vain, then
    # rolls over all the same.
    stream = WorkflowStreamClient.create(client, hub_id, max_batch_size=100)
    news = stream.topic(NEWS_TOPIC, type=Headline)
    async with stream:
        for seq in range(events):
            news.publish(Headline(seq, "x" * 400))
            if (seq + 1) % 100 == 0:
                await stream.flush()
        news.publish(Headline(events, "end", final=True))
    second: str = await eventually(
        lambda: _next_run(client, hub_id, first_run), what="the first run to continue as new"
    )
    # Closed, the second run cannot roll over again while the readers read it.
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)

    runs = await runs_of(client, hub_id, first_run)
    assert runs[1].run_id == second
    started = runs[1].of_type(EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)[0]
    carried = client.data_converter.payload_converter.from_payloads(
        started.workflow_execution_started_event_attributes.input.payloads, [HubInput]
    )[0].stream_state
    assert carried is not None
    base, end = carried.base_offset, carried.base_offset + len(carried.log)
    print(f"rollover: carried offsets {base}..{end - 1}, {runs[1].carried_bytes} B")
    assert 0 < base < end <= events + 1  # some dropped, the newest kept
    # The budget, used to the full: one more 400-byte headline (~700 B carried) would not fit.
    assert CARRY_BUDGET_BYTES - 1024 < runs[1].carried_bytes <= CARRY_BUDGET_BYTES
    assert runs[1].carried_bytes < PAYLOAD_WARNING

    close_behind = await read_until_final(
        client, hub_id, sources=1, run_id=first_run, from_offset=end - 50
    )
    far_behind = await read_until_final(client, hub_id, sources=1, run_id=first_run, from_offset=10)
    assert [s.offset for s in close_behind] == list(range(end - 50, events + 1))
    assert [s.offset for s in far_behind] == list(range(base, events + 1))
    assert task_failures(runs) == []


async def _next_run(client: Client, hub_id: str, run_id: str) -> str | None:
    """The hub's current run, once ``run_id`` has continued as new."""
    first = await client.get_workflow_handle(hub_id, run_id=run_id).describe()
    if first.status != WorkflowExecutionStatus.CONTINUED_AS_NEW:
        return None
    return (await client.get_workflow_handle(hub_id).describe()).run_id
