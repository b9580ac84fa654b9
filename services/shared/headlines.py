"""Headlines into a hub: publishing with flow control, and reading them back in order.

The library part of scenario 3, shared by the ``publisher`` service, the
dashboard's publish button, the benchmark and the tests. A publisher sends
headlines with ``WorkflowStreamClient.create`` in bounded batches, and asks
the hub's ``applied`` update after every WINDOW events, keeping at most DEPTH
of those calls in flight (flow control; the hub also holds it there while it
rolls over). A reader checks that each source's headlines arrive once, in
order, up to its in-band final one.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any, TypeGuard

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.converter import PayloadConverter
from temporalio.service import RPCError, RPCStatusCode

from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS, Backoff
from services.shared.models import NEWS_TOPIC, Headline
from services.shared.runner import Fatal
from services.shared.settings import Settings
from services.shared.subscriptions import follow
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
# a publisher calls the hub's ``applied`` every WINDOW events, and at least
# every CHECK_EVERY. The hub also holds publishers there while it rolls over.
WINDOW = 1000
CHECK_EVERY = 0.5  # seconds
# Calls in flight, for a publisher unpaced: the next window is published
# while the last call is answered, and publishing waits while DEPTH are
# unanswered, so at most DEPTH windows are sent and not yet applied. A paced
# publisher waits for each (depth 1): its rate, not the round trip, sets its
# pace, and pipelined it would only catch up faster after each rollover's
# hold, in bursts its readers must absorb (four paced publishers on two busy
# cores left the bench's reader further behind than the carried log).
DEPTH = 2
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
    depth: int | None = None,
) -> int:
    """Publish ``events`` headlines, or until ``time.monotonic()`` reaches ``until``.

    ``rate`` (events per second) paces them; by default they go as fast as the
    hub applies them, or as ``reader`` reads them. ``depth`` is how many
    windows' ``applied`` calls may be unanswered (1: wait for each; by
    default DEPTH, or 1 when paced). A final
    headline then ends this ``source``'s part of the stream. Returns how many
    were published before it.
    """
    batch = settings.publisher_batch_size
    depth = depth or (1 if rate else DEPTH)
    stream = WorkflowStreamClient.create(
        client, hub_id, batch_interval=BATCH_INTERVAL, max_batch_size=batch
    )
    batches = Batches(stream, client.data_converter.payload_converter)
    calls = InFlight(client.get_workflow_handle(hub_id), publisher_id(stream), settings, depth)
    began, seq = time.monotonic(), 0
    check_at = began + CHECK_EVERY
    try:
        async with stream:
            while (events is None or seq < events) and (until is None or time.monotonic() < until):
                batches.add(Headline(seq, HEADLINES[seq % len(HEADLINES)], source=source))
                seq += 1
                if calls.stopping or seq % WINDOW == 0 or time.monotonic() >= check_at:
                    await batches.flush()
                    await calls.window()
                    if reader is not None:
                        # A rollover carries only the newest ~2,000 headlines: a
                        # reader further behind would jump, so stay within reach.
                        await reader.reached(seq - WINDOW // 2)
                    check_at = time.monotonic() + CHECK_EVERY
                elif seq % batch == 0:
                    await batches.send()
                if rate and seq % batch == 0:
                    await asyncio.sleep(max(0.0, began + seq / rate - time.monotonic()))
            batches.add(Headline(seq, "end of stream", final=True, source=source))
            await batches.flush()
        await calls.last()  # in the log; and held here too during a rollover
    finally:
        # Cancelled or failed: no signal or call left running.
        await batches.cancel()
        await calls.cancel()
    named = {"source": source} if source else {}  # several publishers on one hub
    log.info("published", events=seq, batch_size=batch, depth=depth, **named)
    return seq


class Batches:
    """Headlines into a stream's ``news`` topic, one batch on its way while the next is made.

    The stream encodes a batch under its flush lock, then waits for the
    server; encoding the next one here meanwhile (to a payload with the
    client's converter, as the stream would) overlaps the two. A tight loop
    never yields to the stream's background flusher, so without ``send`` at
    each batch everything would go in one oversized signal; and one batch at
    a time on its way keeps the signals in order and bounded.
    """

    def __init__(self, stream: WorkflowStreamClient, converter: PayloadConverter) -> None:
        self.news = stream.topic(NEWS_TOPIC, type=Headline)
        self.stream, self.converter = stream, converter
        self.next: list[Payload] = []
        self.sending: asyncio.Task[None] | None = None

    def add(self, headline: Headline) -> None:
        self.next.append(self.converter.to_payloads([headline])[0])

    async def send(self) -> None:
        """Send the next batch once the last one is acknowledged; return as it goes out."""
        await self._hand_over()
        self.sending = asyncio.create_task(self.stream.flush())
        await asyncio.sleep(0)  # it encodes and sends now; the server's answer comes later

    async def flush(self) -> None:
        """Return once every headline added is acknowledged by the server."""
        await self._hand_over()
        await self.stream.flush()

    async def cancel(self) -> None:
        if self.sending is not None:
            self.sending.cancel()
            await asyncio.gather(self.sending, return_exceptions=True)

    async def _hand_over(self) -> None:
        if self.sending is not None:
            sending, self.sending = self.sending, None
            await sending  # a send that failed raises here
        for payload in self.next:
            self.news.publish(payload)
        self.next.clear()


class InFlight:
    """A publisher's ``applied`` calls not answered yet: at most ``depth``, each a task.

    Each call covers what was flushed before it. While the hub rolls over it
    answers such a call "stop" (True): the next call is then one the hub
    holds, made with nothing else in flight (depth 1), so the publisher is
    still when the run closes, as a publisher that waits for each call is.
    """

    def __init__(
        self, hub: WorkflowHandle[Any, Any], publisher: str, settings: Settings, depth: int
    ) -> None:
        if depth < 1:
            raise ValueError(f"depth must be at least 1, not {depth}")
        self.hub, self.publisher, self.depth = hub, publisher, depth
        self.attempts = settings.reconnect_attempts
        self.windows = 0  # calls made, the number of the latest
        self.calls: list[asyncio.Task[bool]] = []
        self.stopping = False  # a call was answered "stop": hold at once

    async def window(self) -> None:
        """Call for what was flushed; return once fewer than ``depth`` calls are unanswered.

        After a "stop", the call waits alone, held until the hub's handover is done.
        """
        depth = 1 if self.stopping else self.depth
        self._call(depth)
        await self._below(depth)
        if depth == 1:
            self.stopping = False  # every call is answered; the handover is behind us

    async def last(self) -> None:
        """Call for the final flush (nothing follows it); return once every call is answered."""
        self._call(1)
        await self._below(1)

    async def cancel(self) -> None:
        for call in self.calls:
            call.cancel()
        await asyncio.gather(*self.calls, return_exceptions=True)
        self.calls.clear()

    def _call(self, depth: int) -> None:
        self.windows += 1
        # A Backoff each: the calls retry side by side, each on its own budget.
        backoff = Backoff(f"{self.hub.id} flow control", self.attempts)
        calls = wait_applied(self.hub, self.publisher, backoff, window=self.windows, depth=depth)
        call = asyncio.create_task(calls, name=f"{self.hub.id} applied {self.windows}")
        call.add_done_callback(self._answered)  # noticed at once, not when next awaited
        self.calls.append(call)

    def _answered(self, call: asyncio.Task[bool]) -> None:
        if not call.cancelled() and call.exception() is None and call.result():
            self.stopping = True

    async def _below(self, limit: int) -> None:
        """Wait until fewer than ``limit`` calls are unanswered; a failed call raises here."""
        while True:
            for call in [c for c in self.calls if c.done()]:
                self.calls.remove(call)
                call.result()
            if len(self.calls) < limit:
                return
            await asyncio.wait(self.calls, return_when=asyncio.FIRST_COMPLETED)


def publisher_id(stream: WorkflowStreamClient) -> str:
    """The id ``stream``'s publish batches carry, by which the hub holds its publisher.

    The library (1.35) keeps it private; it is fixed for the client's life.
    """
    return stream._publisher_id


async def wait_applied(
    hub: WorkflowHandle[Any, Any],
    publisher: str,
    backoff: Backoff,
    *,
    window: int = 0,
    depth: int = 1,
) -> bool:
    """Return once the hub has applied every batch ``publisher`` sent before.

    True if the hub, rolling over, asks a publisher with more calls in
    flight (``depth`` above 1) to stop and call again with depth 1, the call
    it holds (:meth:`HubWorkflow.applied`). ``window`` numbers the calls.

    A rollover can cut the update short: the closing run aborts an update it
    had not taken yet, or the server refuses the workflow task that held it
    (WorkflowNotReady); the hub's next run answers the same call. Those and a
    lost server are retried alike, through ``backoff``: its budget
    (RECONNECT_ATTEMPTS) and its growing delay, each retry logged with its cause.
    """
    while True:
        try:
            stop = await hub.execute_update(HubWorkflow.applied, args=[publisher, window, depth])
        except TEMPORAL_ERRORS as err:
            if isinstance(err.__cause__, asyncio.CancelledError):
                # The SDK wraps a cancelled update call; the cancel must get through.
                raise err.__cause__ from None
            await backoff.failed(AbortedByRollover(err) if aborted_by_closing_run(err) else err)
            continue
        backoff.succeeded()
        return stop


def aborted_by_closing_run(err: BaseException) -> TypeGuard[RPCError]:
    """An update the hub's closing run aborted before taking it (NOT_FOUND, by its words)."""
    return (
        isinstance(err, RPCError)
        and err.status == RPCStatusCode.NOT_FOUND
        and "aborted by closing workflow" in err.message
    )


class AbortedByRollover(WorkflowUpdateRPCTimeoutOrCancelledError):
    """An update call cut short by the hub's closing run: it passes, as a timed-out call does.

    NOT_FOUND would otherwise read as "the run is gone"; the hub's handle is
    not pinned to a run, and its next run takes the same call.
    """

    def __init__(self, aborted: RPCError) -> None:
        super().__init__()
        self.args = (f"the hub's run closed before taking the update ({aborted.message})",)


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
    async with follow(client, settings, hub_id, run_id, NEWS_TOPIC, result_type=Headline) as items:
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
