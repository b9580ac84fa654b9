"""publisher: scenario 3, plain code publishing into a passive hub workflow.

Starts a hub, then, side by side in one task group, publishes headlines with
``WorkflowStreamClient.create`` in bounded batches and reads them back. Every
WINDOW events the publisher waits for the hub's ``applied`` update (flow
control; the hub also holds it there while it rolls over) and for its own
reader to be within half a window. The stream ends with an in-band final
event; then the hub is told to ``close``. Exits 0 once the reader has every
headline, in order, exactly once; if the reader fails first, publishing
stops at once and the service exits 1.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.service import RPCError, RPCStatusCode

from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS, Backoff
from services.shared.connect import connect
from services.shared.models import NEWS_TOPIC, Headline, HubInput
from services.shared.runner import Fatal, run_service
from services.shared.settings import Settings
from services.shared.streams import following
from services.workflows import HubWorkflow

log = logs.get(__name__)

HEADLINES = (
    "Workflow hosts its own event log",
    "Subscribers resume from any offset",
    "Publishers batch events into signals",
    "Polls are long-running updates",
    "Offsets are global across topics",
    "Truncation bounds the log",
    "Continue-as-new carries the stream",
    "Nothing lost, nothing repeated",
)
# The background flush between the explicit, bounded ones below.
BATCH_INTERVAL = timedelta(milliseconds=200)
# Publishes are signals, stored before the hub applies them. Unchecked, fast
# publishers pile them up until one workflow task holds more than the hub can
# apply within the 2 s deadlock timeout (TMPRL1101) and history overflows; so
# a publisher waits for the hub's ``applied`` every WINDOW events, and at least
# every CHECK_EVERY. The hub also holds publishers there while it rolls over.
WINDOW = 1000
CHECK_EVERY = 0.5  # seconds
# Flow-control updates cut short by rollovers in a row before giving up.
_ROLLOVER_RETRIES = 20
# Above this many events, log every Nth instead of each (a burst would flood the logs).
_LOG_EACH_UP_TO = 100
_LOG_EVERY = 1000


class Progress:
    """How many headlines the reader beside a publisher has received."""

    def __init__(self) -> None:
        self.received = 0
        self._moved = asyncio.Event()

    def advance(self, received: int) -> None:
        self.received = received
        self._moved.set()

    async def reached(self, received: int) -> None:
        """Return once the reader has received at least ``received`` headlines."""
        while self.received < received:
            self._moved.clear()
            await self._moved.wait()


async def run_publisher(client: Client, settings: Settings) -> int:
    """Publish ``PUBLISHER_EVENTS`` headlines through a hub; return how many the reader got."""
    hub_id = settings.hub_workflow_id or f"hub-{uuid.uuid4().hex[:6]}"
    hub = await client.start_workflow(
        HubWorkflow.run, HubInput(), id=hub_id, task_queue=settings.task_queue
    )
    log.info("hub started", workflow_id=hub_id, events=settings.publisher_events)
    progress = Progress()
    try:
        async with asyncio.TaskGroup() as group:
            reading = group.create_task(
                read_headlines(client, hub_id, hub.result_run_id, settings, progress=progress)
            )
            await publish_headlines(
                client, hub_id, settings, events=settings.publisher_events, reader=progress
            )
    except ExceptionGroup as failed:
        # The first failure cancelled the other task; report it, not the group.
        raise failed.exceptions[0] from None
    received = reading.result()
    await hub.signal(HubWorkflow.close)
    await hub.result()
    log.info("hub closed", published=settings.publisher_events, received=received)
    return received


async def publish_headlines(
    client: Client,
    hub_id: str,
    settings: Settings,
    *,
    events: int | None = None,
    until: float | None = None,
    rate: float | None = None,
    source: str = "",
    reader: Progress | None = None,
) -> int:
    """Publish ``events`` headlines, or until ``time.monotonic()`` reaches ``until``.

    ``rate`` (events per second) paces them; by default they go as fast as the
    hub applies them, or as ``reader`` reads them. A final headline then ends
    this ``source``'s part of the stream. Returns how many were published before it.
    """
    batch = settings.publisher_batch_size
    stream = WorkflowStreamClient.create(
        client, hub_id, batch_interval=BATCH_INTERVAL, max_batch_size=batch
    )
    news = stream.topic(NEWS_TOPIC, type=Headline)
    hub = client.get_workflow_handle(hub_id)
    backoff = Backoff(f"{hub_id} flow control", settings.reconnect_attempts)
    began, seq = time.monotonic(), 0
    check_at = began + CHECK_EVERY
    async with stream:
        while (events is None or seq < events) and (until is None or time.monotonic() < until):
            news.publish(Headline(seq, HEADLINES[seq % len(HEADLINES)], source=source))
            seq += 1
            if seq % WINDOW == 0 or time.monotonic() >= check_at:
                await stream.flush()
                await wait_applied(hub, backoff)
                if reader is not None:
                    # A rollover carries only the newest ~2,000 headlines: a
                    # reader further behind would jump, so stay within reach.
                    await reader.reached(seq - WINDOW // 2)
                check_at = time.monotonic() + CHECK_EVERY
            elif seq % batch == 0:
                # A tight loop never yields to the background flusher, so
                # everything would go in one oversized signal: bound it here.
                await stream.flush()
            if rate and seq % batch == 0:
                await asyncio.sleep(max(0.0, began + seq / rate - time.monotonic()))
        news.publish(Headline(seq, "end of stream", final=True, source=source))
    await wait_applied(hub, backoff)  # in the log; and held here too during a rollover
    named = {"source": source} if source else {}  # several publishers on one hub
    log.info("published", events=seq, batch_size=batch, **named)
    return seq


async def wait_applied(hub: WorkflowHandle[Any, Any], backoff: Backoff) -> None:
    """Return once the hub has applied every batch this publisher sent before.

    A rollover can cut the update short (the closing run aborts it, or its
    workflow task is refused and replayed); the hub's next run answers it.
    """
    for _ in range(_ROLLOVER_RETRIES):
        try:
            await hub.execute_update(HubWorkflow.applied)
        except TEMPORAL_ERRORS as err:
            if isinstance(err.__cause__, asyncio.CancelledError):
                # The SDK wraps a cancelled update call; the cancel must get through.
                raise err.__cause__ from None
            if not cut_short_by_rollover(err):
                await backoff.failed(err)
            continue
        backoff.succeeded()
        return
    raise Fatal(f"{hub.id}: {_ROLLOVER_RETRIES} flow-control updates in a row were cut short")


def cut_short_by_rollover(err: BaseException) -> bool:
    """An update the hub's rollover interrupted; the same update on the next run will do."""
    if not isinstance(err, RPCError):
        return False
    if err.status == RPCStatusCode.NOT_FOUND:
        return "closing workflow" in err.message  # "update was aborted by closing workflow"
    # "WorkflowNotReady": the task that held it was refused (UNHANDLED_COMMAND) and is retried.
    return err.status == RPCStatusCode.FAILED_PRECONDITION and any(
        d.type_url.endswith(".WorkflowNotReadyFailure") for d in err.grpc_status.details
    )


async def read_headlines(
    client: Client,
    hub_id: str,
    run_id: str | None,
    settings: Settings,
    *,
    sources: int = 1,
    progress: Progress | None = None,
) -> int:
    """Read until every source's final headline; each must arrive once, in order.

    Raises :class:`Fatal` naming the first headline out of place.
    """
    expected = settings.publisher_events
    next_seq: dict[str, int] = {}
    finished: set[str] = set()
    received = 0
    backoff = Backoff(f"{hub_id} subscription", settings.reconnect_attempts)
    async with following(
        client,
        hub_id,
        run_id,
        NEWS_TOPIC,
        result_type=Headline,
        backoff=backoff,
        poll_cooldown=settings.poll_cooldown,
    ) as items:
        async for item in items:
            headline = item.data
            due = next_seq.get(headline.source, 0)
            if headline.seq != due or headline.source in finished:
                raise Fatal(
                    f"headline {headline.seq} from {headline.source!r} arrived at offset "
                    f"{item.offset} where {due} was due"
                )
            next_seq[headline.source] = due + 1
            if headline.final:
                finished.add(headline.source)
                if len(finished) == sources:
                    break
                continue
            received += 1
            if progress is not None:
                progress.advance(received)
            if expected <= _LOG_EACH_UP_TO or received % _LOG_EVERY == 0:
                log.info("headline", offset=item.offset, text=headline.text, seq=headline.seq)
    if len(finished) < sources:
        raise Fatal(f"stream ended after {received} headlines, before every final one")
    return received


async def main(settings: Settings) -> None:
    received = await run_publisher(await connect(settings), settings)
    if received != settings.publisher_events:
        raise Fatal(f"the reader got {received} of {settings.publisher_events} headlines")


if __name__ == "__main__":
    run_service("publisher", main, one_shot=True)
