"""The read protocol's one way in: the registry's ``read`` (contract C), in protocol terms.

Every reader of a stream in one web process shares that stream's one
upstream subscription and window through the registry, whether it came by
the dashboard's SSE or by this protocol; so a replica polls Temporal once
per stream however many protocol clients it serves. This module turns the
protocol's offsets into registry positions and the registry's answers and
errors into what the routes send.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from services.shared.backoff import TEMPORAL_ERRORS, one_line
from services.web.chain import Position, Run, StreamEvent, last_run, read_retained
from services.web.durable.flight import SingleFlight
from services.web.durable.offsets import Offset, Sentinel
from services.web.registry import BeyondEnd, Busy, Read, UnknownStream, WrongChain

# Past every offset a stream reaches: a query from here returns no events, only the tail.
_BEYOND = 2**53
_MAX_EPOCHS = 10_000
# A window that has just opened has read nothing yet, and says "up to date" at 0;
# an empty up-to-date answer is checked against Temporal's tail, once a second at most.
_VERIFIED_FOR_S = 1.0
# How long a catch-up waits for a freshly opened window to read what Temporal holds.
_FIRST_READ_S = 10.0


class NoSuchStream(LookupError):
    """No workflow of that id (404)."""


class Gone(LookupError):
    """The position is no longer retained (410); ``earliest`` is where the stream now starts."""

    def __init__(self, why: str, earliest: Offset | None = None) -> None:
        super().__init__(why)
        self.earliest = earliest


class Refused(ValueError):
    """An offset this stream never issued: another workflow's, or past the tail (400)."""


class Unavailable(Exception):
    """Temporal does not answer, the stream failed, or a cap is reached (503)."""


@dataclass(frozen=True)
class Chunk:
    """One read: the events from ``start`` on, and where the next read starts."""

    start: Offset
    events: list[StreamEvent]
    next: Offset
    up_to_date: bool  # nothing newer existed when the read returned
    closed: bool  # the chain has ended and ``next`` is its final offset


class Registry(Protocol):
    """Contract C: the web's open streams, each read through its one window."""

    async def read(
        self, workflow_id: str, after: Position | None, *, wait: float, max_bytes: int
    ) -> Read: ...


class Source:
    """Protocol reads of the registry's streams."""

    def __init__(self, client: Client, registry: Registry) -> None:
        self._client = client
        self._registry = registry
        self._epochs: dict[tuple[str, str], int] = {}
        self._verified: dict[tuple[str, str], float] = {}
        self._tails: SingleFlight[int] = SingleFlight()
        self._describes: SingleFlight[int] = SingleFlight()

    async def read(
        self, workflow_id: str, start: Sentinel | Offset, *, wait: float, max_bytes: int
    ) -> Chunk:
        """Events from ``start``: at once if any, else the first within ``wait`` seconds.

        Raises NoSuchStream, Gone, Refused or Unavailable.
        """
        try:
            return await self._read(workflow_id, start, wait=wait, max_bytes=max_bytes)
        except (BeyondEnd, WrongChain) as err:
            raise Refused(str(err)) from None
        except UnknownStream as err:
            if isinstance(start, Offset):  # its chain is gone (retention) or never was
                raise Gone(f"{err}; read from offset=-1 to start again") from None
            raise NoSuchStream(str(err)) from None
        except Busy as err:
            raise Unavailable(str(err)) from None
        except TEMPORAL_ERRORS as err:
            raise Unavailable(f"Temporal is not answering: {one_line(err)}") from None

    async def _read(
        self, workflow_id: str, start: Sentinel | Offset, *, wait: float, max_bytes: int
    ) -> Chunk:
        after: Position | None = None
        if start is Sentinel.NOW:
            # Which chain is the latest, then where it ends: only what comes next is read.
            latest = await self._registry.read(workflow_id, None, wait=0, max_bytes=1)
            chain = latest.next.chain
            after = Position(chain, await self._tail(workflow_id, chain))
        elif isinstance(start, Offset):
            if start.epoch_us != await self._epoch(workflow_id, start.chain):
                raise Refused(f"offset {start.token()} was not issued for {workflow_id!r}")
            after = Position(start.chain, start.offset)
        read = await self._registry.read(workflow_id, after, wait=wait, max_bytes=max_bytes)
        if not read.events and read.end is None and read.gap is None:
            if read.up_to_date:
                read = await self._verified_read(workflow_id, read, wait=wait, max_bytes=max_bytes)
            elif read.state.state == "live":
                # Within Temporal's log but past what a new window has read: wait for it.
                read = await self._registry.read(
                    workflow_id, read.next, wait=max(wait, _FIRST_READ_S), max_bytes=max_bytes
                )
        epoch = await self._epoch(workflow_id, read.next.chain)
        begin = Offset(epoch, _begin(after, read), read.next.chain)
        if read.gap is not None and after is not None:
            raise Gone(
                f"offsets {read.gap.from_offset}..{read.gap.to_offset - 1} of "
                f"{workflow_id!r} were truncated; the stream now starts at the earliest offset",
                begin.at(read.gap.to_offset),
            )
        if not read.events and read.state.state != "live" and read.end is None:
            raise Unavailable(f"the stream is {read.state.state}: {read.state.detail}")
        return Chunk(
            begin,
            read.events,
            begin.at(read.next.offset),
            read.up_to_date,
            read.end is not None,
        )

    async def _verified_read(
        self, workflow_id: str, read: Read, *, wait: float, max_bytes: int
    ) -> Read:
        """``read`` if Temporal's tail agrees it is up to date; else a read that waits for it."""
        key = (workflow_id, read.next.chain)
        now = asyncio.get_running_loop().time()
        if now - self._verified.get(key, -_VERIFIED_FOR_S) < _VERIFIED_FOR_S:
            return read
        if await self._tail(workflow_id, read.next.chain) <= read.next.offset:
            if len(self._verified) >= _MAX_EPOCHS:
                self._verified.clear()
            self._verified[key] = now
            return read
        # The window has not read what Temporal holds yet: wait for it to.
        return await self._registry.read(
            workflow_id, read.next, wait=max(wait, _FIRST_READ_S), max_bytes=max_bytes
        )

    async def _tail(self, workflow_id: str, chain: str) -> int:
        """The chain's tail as Temporal holds it now (a query: no Update, no history).

        Askers that come while one query is out share its answer.
        """

        async def ask() -> int:
            run_id, status = await last_run(self._client, workflow_id, chain)
            run = Run(workflow_id, run_id, chain, status)
            return (await read_retained(self._client, run, _BEYOND)).next_offset

        return await self._tails.run((workflow_id, chain), ask)

    async def _epoch(self, workflow_id: str, chain: str) -> int:
        """The chain's start time in microseconds: what sorts its offsets after older chains'."""
        key = (workflow_id, chain)
        if key not in self._epochs:
            epoch = await self._describes.run(key, lambda: self._describe(workflow_id, chain))
            if len(self._epochs) >= _MAX_EPOCHS:
                self._epochs.clear()  # a bound, not an LRU: describing again is cheap
            self._epochs[key] = epoch
        return self._epochs[key]

    async def _describe(self, workflow_id: str, chain: str) -> int:
        handle = self._client.get_workflow_handle(workflow_id, run_id=chain)
        try:
            first = await handle.describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                raise LookupError(f"{workflow_id!r} has no run chain {chain!r}") from None
            raise
        return int(first.start_time.timestamp() * 1_000_000)


def _begin(after: Position | None, read: Read) -> int:
    """Where this read started: the asked position, or (from -1) the first retained one."""
    if after is not None:
        return after.offset
    if read.gap is not None:
        return read.gap.to_offset
    return read.events[0].offset if read.events else read.next.offset
