"""One stream's window and its viewers.

A stream is one chain of one workflow id. Its follower (one upstream
subscription, whoever reads) appends to an in-memory window bounded by
``WEB_REPLAY_EVENTS`` events and ``WEB_REPLAY_BYTES`` bytes. Every reader
asks :meth:`Window.read` for what follows its position: the window answers
from memory, or from Temporal by query (no Update, no history) for a
position older than the window, and waits for the next event at the head.
The follower never waits for a reader, so a slow reader holds up nobody.

:func:`watch` is one viewer: reads in a loop, turned into the messages an
SSE response sends. A viewer that has caught up once and then lets more than
``WEB_VIEWER_BUFFER`` events arrive while it is still sending the last ones
is dropped (its socket is slower than the stream); it resumes by its id.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass

from temporalio.client import Client, WorkflowExecutionStatus

from services.shared import logs
from services.shared.backoff import (
    TEMPORAL_ERRORS,
    Backoff,
    RunGone,
    is_transient,
    one_line,
    raise_if_lasting,
)
from services.shared.runner import Fatal
from services.shared.settings import Settings
from services.web.chain import Page, Position, Run, StreamEvent, read_retained
from services.web.follower import Closed, Down, Moved, Up, follow_chain

log = logs.get(__name__)

# How long a reader that met a Temporal fault waits before it asks again.
RETRY_READ_S = 1.0
# A run already closed when its window opened has a final log: its end is on
# its way (the follower drains it, then asks how it closed), so a read at the
# head waits this long for it rather than answer "up to date" but not "ended".
END_DUE_S = 5.0
_OPEN = (WorkflowExecutionStatus.RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW, None)


class BeyondEnd(ValueError):
    """A position past the end of the chain's log (forged, or of a log since reset)."""


# -- what a reader is told ------------------------------------------------------
@dataclass(frozen=True)
class State:
    """The upstream: ``live``, ``reconnecting``, ``failed`` or ``closing``, on ``run_id``."""

    state: str
    run_id: str
    detail: str = ""


@dataclass(frozen=True)
class Gap:
    """Offsets ``from_offset`` up to (not including) ``to_offset`` are gone from the log."""

    from_offset: int
    to_offset: int


@dataclass(frozen=True)
class Ended:
    """The chain is closed and every retained event was delivered."""

    status: str
    next_offset: int
    detail: str = ""


@dataclass(frozen=True)
class Read:
    """One answer of :meth:`Window.read`.

    ``events`` follow ``gap`` (if positions were removed before them);
    ``next`` is where the next read starts; ``up_to_date`` says the reader is
    at the head; ``end`` is set once the chain has ended and the reader has
    everything.
    """

    events: list[StreamEvent]
    next: Position
    up_to_date: bool
    end: Ended | None
    gap: Gap | None
    state: State

    @property
    def ended(self) -> bool:
        return self.end is not None


@dataclass(frozen=True)
class Dropped:
    """This viewer fell too far behind; it should resume after its last event."""

    behind: int


Message = StreamEvent | Gap | State | Ended | Dropped


class Window:
    """One chain of one workflow id: its follower and the events it keeps for readers."""

    def __init__(self, client: Client, run: Run, settings: Settings) -> None:
        self.workflow_id = run.workflow_id
        self.chain = run.chain
        self.run = run
        self.users = 0  # viewers attached and reads in progress
        self.live_viewers = 0  # viewers that have caught up with the head
        self.idle_since: float | None = asyncio.get_running_loop().time()
        self.end: Ended | None = None
        self.failed: str | None = None
        self._client = client
        self._max_events = settings.web_replay_events
        self._max_bytes = settings.web_replay_bytes
        self._catch_up_attempts = settings.reconnect_attempts
        self._events: deque[StreamEvent] = deque()
        self._bytes = 0
        self._base = 0  # the lowest offset the window answers for
        self._head = 0  # the offset after the newest event the follower has read
        self._down: str | None = None
        self._closing = False
        self._changed = asyncio.Event()
        backoff = Backoff(f"{run.workflow_id} stream", settings.reconnect_attempts)
        updates = follow_chain(client, run, backoff=backoff, poll_cooldown=settings.poll_cooldown)
        self._task = asyncio.create_task(self._follow(updates), name=f"follow {run.workflow_id}")

    # -- the follower's side ------------------------------------------------------
    async def _follow(self, updates: AsyncIterator[object]) -> None:
        log.info("stream opened", workflow_id=self.workflow_id, chain=self.chain)
        try:
            async for update in updates:
                if isinstance(update, StreamEvent):
                    self._append(update)
                elif isinstance(update, Moved):
                    self.run = update.run
                elif isinstance(update, Down):
                    self._down = update.why
                elif isinstance(update, Up):
                    self._down = None
                elif isinstance(update, Closed):
                    self.end = Ended(update.status, self._head)
                    log.info("stream ended", workflow_id=self.workflow_id, status=update.status)
                self._notify()
        except RunGone as gone:
            self.end = Ended("GONE", self._head, str(gone))
            log.warning("stream's run is gone", workflow_id=self.workflow_id, why=str(gone))
        except Fatal as err:
            self.failed = str(err)
            log.error("stream failed", workflow_id=self.workflow_id, cause=str(err))
        except Exception as err:  # a bug must not take the other streams down
            self.failed = f"internal error ({type(err).__name__}); see the web's log"
            log.exception("stream crashed", workflow_id=self.workflow_id)
        finally:
            self._notify()

    def _append(self, event: StreamEvent) -> None:
        self._events.append(event)
        self._bytes += event.size
        self._head = event.offset + 1
        # Bounded by count and by bytes; the newest event always stays.
        while len(self._events) > 1 and (
            len(self._events) > self._max_events or self._bytes > self._max_bytes
        ):
            gone = self._events.popleft()
            self._bytes -= gone.size
            self._base = gone.offset + 1

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def state(self) -> State:
        """The upstream's state, as readers are told it."""
        if self.failed is not None:
            return State("failed", self.run.run_id, self.failed)
        if self._closing:
            return State("closing", self.run.run_id, "the server is stopping; reconnect")
        if self._down is not None:
            return State("reconnecting", self.run.run_id, self._down)
        return State("live", self.run.run_id)

    @property
    def done(self) -> bool:
        """The follower has stopped: the chain ended, failed, or the window was closed."""
        return self._task.done()

    @property
    def head(self) -> int:
        """The offset after the newest event the follower has read."""
        return self._head

    @property
    def retained(self) -> tuple[int, int]:
        """Events and bytes the window holds now."""
        return len(self._events), self._bytes

    async def close(self) -> None:
        """Stop the follower; readers are told ``closing`` and their browsers reconnect."""
        self._closing = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    # -- the readers' side --------------------------------------------------------
    async def read(self, offset: int, *, wait: float, max_bytes: int) -> Read:
        """What follows ``offset``, at most ``max_bytes`` of event data (one event at least).

        Returns at once when there is something; at the head, waits up to
        ``wait`` seconds for the next event. Raises BeyondEnd for an offset
        past the end of the chain's log.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (wait if self.run.status in _OPEN else max(wait, END_DUE_S))
        while True:
            changed = self._changed  # taken first: a change while we wait below wakes us
            if offset < self._base:
                return await self._from_temporal(offset, max_bytes)
            if offset < self._head:
                return self._from_window(offset, max_bytes)
            if offset > self._head:
                await self._check_within(offset)
            elif self.end is not None or self.done:
                return self._read([], offset, up_to_date=True)
            remaining = deadline - loop.time()
            if remaining <= 0:
                return self._read([], offset, up_to_date=offset == self._head)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await changed.wait()

    def _from_window(self, offset: int, max_bytes: int) -> Read:
        start = bisect.bisect_left(self._events, offset, key=lambda e: e.offset)
        # Indexed, not sliced: a deque is quick at its ends, where live readers are.
        held = self._events
        events = _up_to((held[i] for i in range(start, len(held))), max_bytes)
        gap = Gap(offset, events[0].offset) if events and events[0].offset > offset else None
        after = events[-1].offset + 1 if events else offset
        return self._read(events, after, up_to_date=after == self._head, gap=gap)

    async def _from_temporal(self, offset: int, max_bytes: int) -> Read:
        """Older than the window: read what the chain's current run retains, by query."""
        run = self.run
        try:
            page = await read_retained(self._client, run, offset)
        except TEMPORAL_ERRORS as err:
            return await self._fault(err, offset)
        events = _up_to(page.events, max_bytes)
        first = events[0].offset if events else page.next_offset
        gap = Gap(offset, first) if first > offset else None
        after = events[-1].offset + 1 if events else max(first, offset)
        return self._read(events, after, up_to_date=False, gap=gap)

    async def check(self, offset: int) -> None:
        """Raise BeyondEnd if ``offset`` is past the end of the chain's log."""
        if offset > self._head:
            await self._check_within(offset)

    async def _check_within(self, offset: int) -> None:
        """Raise BeyondEnd unless Temporal's log reaches ``offset`` (the window may lag it)."""
        if self.end is not None or self.done:
            raise BeyondEnd(self._beyond(offset, self._head))
        try:
            page: Page = await read_retained(self._client, self.run, offset)
        except TEMPORAL_ERRORS:
            return  # no answer now: wait at the head; the follower reports the fault
        if page.next_offset < offset:
            raise BeyondEnd(self._beyond(offset, page.next_offset))

    def _beyond(self, offset: int, end: int) -> str:
        return (
            f"offset {offset} is beyond the end of the log of {self.workflow_id!r} "
            f"(chain {self.chain} ends at {end}); a reset or a forged position"
        )

    async def _fault(self, err: BaseException, offset: int) -> Read:
        """A query that met a fault: a passing one is retried by the reader after a pause."""
        if not is_transient(err):
            try:
                raise_if_lasting(err, f"{self.workflow_id} catch-up")
            except RunGone as gone:
                end = Ended("GONE", offset, str(gone))
                return Read([], Position(self.chain, offset), True, end, None, self.state())
            except Fatal as fatal:
                state = State("failed", self.run.run_id, str(fatal))
                return Read([], Position(self.chain, offset), False, None, None, state)
        await asyncio.sleep(RETRY_READ_S)
        state = State("reconnecting", self.run.run_id, one_line(err))
        return Read([], Position(self.chain, offset), False, None, None, state)

    def _read(
        self,
        events: list[StreamEvent],
        after: int,
        *,
        up_to_date: bool,
        gap: Gap | None = None,
    ) -> Read:
        end = self.end if up_to_date and self.end is not None else None
        state = self.state()
        if end is None and up_to_date and self.done and self.failed is None and not self._closing:
            state = State("failed", self.run.run_id, "the stream's follower stopped")
        return Read(events, Position(self.chain, after), up_to_date, end, gap, state)


def _up_to(events: Iterable[StreamEvent], max_bytes: int) -> list[StreamEvent]:
    """The first of ``events`` within ``max_bytes`` of data, and always at least one."""
    taken: list[StreamEvent] = []
    size = 0
    for event in events:
        if taken and size + event.size > max_bytes:
            break
        taken.append(event)
        size += event.size
    return taken


async def watch(
    window: Window, offset: int, *, buffer: int, max_bytes: int, wait: float = 15.0
) -> AsyncIterator[list[Message]]:
    """One viewer: everything after ``offset``, live, until the chain ends.

    Each answer is what one read has to say, in order (a socket takes it in
    one write). Top to bottom: read, say what changed (state, a gap), hand
    out the events, and stop after ``end``, a failed or closing upstream, or
    when this viewer - caught up once - let more than ``buffer`` new events
    arrive while it was still busy handing out the last ones (its socket is
    slower than the stream). A burst that lands while it waits at the head
    is not that.
    """
    told = window.state()  # the hello that opens the response says it already
    live = False
    seen_head = window.head
    try:
        while True:
            if live and window.head - seen_head > buffer:
                behind = window.head - offset
                log.info(
                    "viewer dropped: slower than the stream",
                    workflow_id=window.workflow_id,
                    behind=behind,
                )
                yield [Dropped(behind)]
                return
            if not live and offset >= window.head:
                live = True  # caught up: from now on it must keep up
                window.live_viewers += 1
            read = await window.read(offset, wait=wait, max_bytes=max_bytes)
            seen_head = window.head
            said: list[Message] = []
            if read.state != told:
                told = read.state
                said.append(read.state)
            if read.gap is not None:
                said.append(read.gap)
            said.extend(read.events)
            if read.end is not None:
                said.append(read.end)
            if said:
                yield said
            offset = read.next.offset
            if read.end is not None or read.state.state in ("failed", "closing"):
                return
    finally:
        if live:
            window.live_viewers -= 1
