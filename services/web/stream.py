"""One stream: its single upstream reader, its replay window, and its viewers' cursors.

A stream is one continue-as-new chain of one workflow id. Its upstream
reader appends to a bounded in-memory window; each viewer reads that window
through its own cursor, so a slow viewer never holds up another, and memory
does not grow with viewers.

A viewer that resumes from a position, or asks for one older than the
window, first reads from Temporal with queries (no Update, no history), which
also tells it what truncation dropped. A live viewer that falls more than its
buffer behind the head is dropped; it resumes by Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass

from temporalio.client import Client

from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS, Backoff, RunGone, one_line
from services.shared.runner import Fatal
from services.shared.settings import Settings
from services.web.chain import Run, StreamEvent, read_retained
from services.web.upstream import ChainFollower

log = logs.get(__name__)


# -- what a viewer receives ---------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One event of the stream."""

    event: StreamEvent


@dataclass(frozen=True)
class Truncated:
    """Offsets ``from_offset`` up to (not including) ``to_offset`` are gone from the stream."""

    from_offset: int
    to_offset: int


@dataclass(frozen=True)
class Status:
    """The stream's connection: ``live``, ``reconnecting``, ``failed`` or ``closing``."""

    state: str
    run_id: str
    detail: str = ""


@dataclass(frozen=True)
class Ended:
    """The chain is closed and every retained event was delivered."""

    status: str
    next_offset: int
    detail: str = ""


@dataclass(frozen=True)
class Dropped:
    """This viewer fell too far behind; it should resume after its last event."""

    behind: int


Message = Item | Truncated | Status | Ended | Dropped


@dataclass(eq=False)
class _Cursor:
    """A viewer's place in the window: the next sequence number it will read."""

    sequence: int
    live: bool = False  # it has caught up once; from then on its buffer is bounded
    behind: int = 0  # how far behind it was when its buffer overflowed


class Stream:
    """One chain of one workflow id: its upstream reader and its replay window."""

    def __init__(self, client: Client, run: Run, settings: Settings) -> None:
        self.workflow_id = run.workflow_id
        self.chain = run.chain
        self.viewers = 0
        self.idle_since: float | None = asyncio.get_running_loop().time()
        self.ended: Ended | None = None
        self.failed: str | None = None
        self._client = client
        self._buffer = settings.web_viewer_buffer
        self._catch_up_attempts = settings.reconnect_attempts
        self._window: deque[StreamEvent] = deque(maxlen=settings.web_replay_events)
        self._appended = 0  # events ever put in the window: the next one's sequence number
        self._window_start = 0  # the lowest offset the window still answers for
        self._closing = False
        self._changed = asyncio.Event()
        self._cursors: set[_Cursor] = set()  # the live viewers, each with its buffer
        self.follower = ChainFollower(
            client,
            run,
            backoff=Backoff(f"{run.workflow_id} stream", settings.reconnect_attempts),
            poll_cooldown=settings.poll_cooldown,
            on_change=self._notify,
        )
        self._task = asyncio.create_task(self._read_upstream(), name=f"upstream {run.workflow_id}")

    # -- the upstream side --------------------------------------------------
    async def _read_upstream(self) -> None:
        log.info("stream opened", workflow_id=self.workflow_id, chain=self.chain)
        try:
            async for event in self.follower.events(0):
                self._append(event)
                # Viewers take it before the next one; one that cannot is the slow one.
                await asyncio.sleep(0)
            self.ended = Ended(self.follower.closed_status, self._head)
            log.info(
                "stream ended",
                workflow_id=self.workflow_id,
                status=self.ended.status,
                events=self._head,
            )
        except RunGone as gone:
            self.ended = Ended("GONE", self._head, str(gone))
            log.warning("stream's run is gone", workflow_id=self.workflow_id, why=str(gone))
        except Fatal as err:
            self.failed = str(err)
            log.error("stream failed", workflow_id=self.workflow_id, cause=str(err))
        except Exception as err:  # a bug must not take the other streams down
            self.failed = one_line(err)
            log.exception("stream crashed", workflow_id=self.workflow_id)
        finally:
            self._notify()

    def _append(self, event: StreamEvent) -> None:
        if len(self._window) == self._window.maxlen:
            self._window_start = self._window[0].offset + 1
        self._window.append(event)
        self._appended += 1
        # A live viewer with a full buffer is cut off now; the others are not held up.
        for cursor in [c for c in self._cursors if self._appended - c.sequence > self._buffer]:
            cursor.behind = self._appended - cursor.sequence
            self._cursors.discard(cursor)
        self._notify()

    @property
    def _head(self) -> int:
        """The offset after the newest event the window has seen."""
        return self._window[-1].offset + 1 if self._window else self._window_start

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def status(self) -> Status:
        """The stream's connection state, as viewers are told it."""
        run_id = self.follower.run.run_id
        if self.failed is not None:
            return Status("failed", run_id, self.failed)
        if self._closing:
            return Status("closing", run_id, "the server is stopping; reconnect")
        if self.follower.down is not None:
            return Status("reconnecting", run_id, self.follower.down)
        return Status("live", run_id)

    async def close(self) -> None:
        """Stop the upstream reader and release every viewer (they reconnect)."""
        self._closing = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def done(self) -> bool:
        return self._task.done()

    @property
    def live_viewers(self) -> int:
        """Viewers caught up with the head, each within its buffer."""
        return len(self._cursors)

    # -- the viewer side ----------------------------------------------------
    async def messages(self, after: int | None) -> AsyncIterator[Message]:
        """Everything after offset ``after`` (from the start when None), live, to the end."""
        position = 0 if after is None else after + 1
        # A resume is checked against Temporal: only it knows what truncation took since.
        verify = after is not None
        reported = self.status()  # the hello that opens the response says it already
        while True:
            if verify or position < self._window_start:
                source = self._from_temporal(position, need=position < self._window_start)
                verify = False
            else:
                source = self._from_window(position, reported)
            # Each source ends with a final message, or hands over to the other one.
            async with contextlib.aclosing(source) as messages:
                async for message in messages:
                    if isinstance(message, Status):
                        if message == reported:
                            continue
                        reported = message
                    position = _next_position(message, position)
                    yield message
                    if _final(message):
                        return

    async def _from_window(self, position: int, reported: Status) -> AsyncGenerator[Message]:
        """From the window, then live; returns early if the window lost ``position``.

        The state is sent when it differs from ``reported``, what the viewer
        was told last: not once per event, which would cost every viewer a
        pass through the generators for nothing.
        """
        cursor = _Cursor(self._sequence_of(position))
        try:
            while True:
                changed = self._changed  # taken first: a change while we yield below wakes us
                first = self._appended - len(self._window)
                if cursor.behind or (cursor.live and cursor.sequence < first):
                    yield Dropped(cursor.behind or self._appended - cursor.sequence)
                    return
                if cursor.sequence < first:
                    return  # still catching up: the rest is read from Temporal
                if cursor.sequence < self._appended:
                    event = self._window[cursor.sequence - first]
                    cursor.sequence += 1
                    if event.offset < position:
                        continue  # already read from Temporal, ahead of the upstream
                    if event.offset > position:
                        yield Truncated(position, event.offset)
                    position = event.offset + 1
                    yield Item(event)
                    continue
                if not cursor.live:
                    cursor.live = True
                    self._cursors.add(cursor)
                if (status := self.status()) != reported:
                    reported = status
                    yield status
                if self.ended is not None:
                    yield self.ended
                    return
                await changed.wait()
        finally:
            self._cursors.discard(cursor)

    def _sequence_of(self, position: int) -> int:
        """Sequence number of the first event in the window at or after ``position``."""
        index = bisect.bisect_left(self._window, position, key=lambda e: e.offset)
        return self._appended - len(self._window) + index

    async def _from_temporal(self, position: int, *, need: bool) -> AsyncGenerator[Message]:
        """Read retained events from Temporal until caught up with the window.

        With ``need`` False the window holds the position too, so when
        Temporal does not answer we skip the check and serve from memory.
        """
        backoff = Backoff(f"{self.workflow_id} catch-up", self._catch_up_attempts)
        while True:
            changed = self._changed  # taken first: a change while we yield below wakes us
            run = self.follower.run
            try:
                page = await read_retained(self._client, run, position)
            except TEMPORAL_ERRORS as err:
                if not need:
                    return
                yield Status("reconnecting", run.run_id, one_line(err))
                try:
                    await backoff.failed(err)
                except RunGone as gone:
                    yield Ended("GONE", position, str(gone))
                    return
                except Fatal as failed:
                    yield Status("failed", run.run_id, str(failed))
                    return
                continue
            start = position
            for event in page.events:
                if event.offset > position:
                    yield Truncated(position, event.offset)
                yield Item(event)
                position = event.offset + 1
            if not page.events and page.next_offset > position:
                yield Truncated(position, page.next_offset)
                position = page.next_offset
            if position >= self._window_start:
                return
            if position == start:
                if self.done:  # and so nothing will move: end this viewer, one way or the other
                    yield self.ended or Status("failed", run.run_id, "the stream's reader stopped")
                    return
                # Nothing newer on this run: the chain moved on and the upstream has
                # not followed yet. Wait until it does.
                await changed.wait()


def _next_position(message: Message, position: int) -> int:
    """Where a viewer stands after ``message``: past the event, or past the gap."""
    if isinstance(message, Item):
        return message.event.offset + 1
    if isinstance(message, Truncated):
        return message.to_offset
    return position


def _final(message: Message) -> bool:
    """After this the viewer's response ends (a browser reconnects unless it was ``end``)."""
    if isinstance(message, Status):
        return message.state in ("failed", "closing")
    return isinstance(message, Ended | Dropped)
