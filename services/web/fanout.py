"""Fan-out: every viewer of a stream shares that stream's one upstream subscription.

Every subscriber poll is an Update, and Temporal allows 10 in flight per
workflow execution, so a poll per browser tab fails at the eleventh. Here
viewers are counted against ``WEB_MAX_VIEWERS`` and attached to the one
:class:`~services.web.stream.Stream` of their chain, which is opened on the
first viewer and closed ``WEB_LINGER_SECONDS`` after the last one leaves
(so a reconnect in between finds its window still warm).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from services.shared import logs
from services.shared.settings import Settings
from services.web.chain import Position, Run, current_run, describe
from services.web.stream import Message, Stream

log = logs.get(__name__)


class UnknownStream(LookupError):
    """No such workflow id, or no such chain under it; the message says which."""


class Busy(Exception):
    """Past the viewer cap or the stream cap; the message says which."""


@dataclass
class Viewer:
    """One connected viewer; call ``leave`` when it goes (more calls do nothing)."""

    stream: Stream
    after: int | None
    _fanout: Fanout = field(repr=False)
    _left: bool = field(default=False, repr=False)

    def messages(self) -> AsyncIterator[Message]:
        return self.stream.messages(self.after)

    def leave(self) -> None:
        if not self._left:
            self._left = True
            self._fanout.release(self.stream)


class Fanout:
    """The open streams, keyed by (workflow id, chain), and the viewer count."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.viewers = 0
        self._client = client
        self._settings = settings
        self._streams: dict[tuple[str, str], Stream] = {}
        self._closed = False

    @property
    def streams(self) -> list[Stream]:
        return list(self._streams.values())

    async def join(self, workflow_id: str, after: Position | None) -> Viewer:
        """Attach a viewer after ``after`` (from the start when None).

        Raises Busy past a cap, UnknownStream for a workflow id or chain that
        is not there; other Temporal errors propagate.
        """
        if self._closed:
            raise Busy("the server is stopping; reconnect in a moment")
        if self.viewers >= self._settings.web_max_viewers:
            raise Busy(
                f"{self.viewers} viewers connected; WEB_MAX_VIEWERS is "
                f"{self._settings.web_max_viewers}"
            )
        self.viewers += 1  # reserved now: the lookups below wait on Temporal
        try:
            stream = await self._stream(workflow_id, after)
        except BaseException:
            self.viewers -= 1
            raise
        stream.viewers += 1
        stream.idle_since = None
        return Viewer(stream, None if after is None else after.offset, self)

    def release(self, stream: Stream) -> None:
        self.viewers -= 1
        stream.viewers -= 1
        if stream.viewers == 0:
            stream.idle_since = asyncio.get_running_loop().time()

    async def _stream(self, workflow_id: str, after: Position | None) -> Stream:
        if after is not None and (found := self._live(workflow_id, after.chain)):
            return found
        run = await self._lookup(workflow_id, after)
        if len(self._streams) >= self._settings.web_max_streams:
            await self._reap(linger=0)  # lingering streams make room first
        # Checked after the waits above, in which others may have come and gone.
        if found := self._live(workflow_id, run.chain):
            return found
        if self._closed:
            raise Busy("the server is stopping; reconnect in a moment")
        if len(self._streams) >= self._settings.web_max_streams:
            raise Busy(
                f"{len(self._streams)} streams open; WEB_MAX_STREAMS is "
                f"{self._settings.web_max_streams}"
            )
        stream = Stream(self._client, run, self._settings)
        self._streams[(workflow_id, run.chain)] = stream
        return stream

    def _live(self, workflow_id: str, chain: str) -> Stream | None:
        """The open stream of the chain; a failed one is forgotten so a fresh one starts."""
        stream = self._streams.get((workflow_id, chain))
        if stream is not None and stream.failed is not None:
            del self._streams[(workflow_id, chain)]
            return None
        return stream

    async def _lookup(self, workflow_id: str, after: Position | None) -> Run:
        try:
            if after is None:
                return await describe(self._client, workflow_id)
            return await current_run(self._client, workflow_id, after.chain)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            if after is None:
                raise UnknownStream(f"no workflow {workflow_id!r} in this namespace") from err
            raise UnknownStream(
                f"workflow {workflow_id!r} has no run chain {after.chain!r} (any more); "
                "reconnect without Last-Event-ID to follow its latest run"
            ) from err

    async def reap_idle(self) -> None:
        """Close streams that have had no viewer for ``WEB_LINGER_SECONDS``, forever."""
        linger = self._settings.web_linger_seconds
        while True:
            await asyncio.sleep(min(1.0, max(0.05, linger / 2)))
            await self._reap(linger)

    async def _reap(self, linger: float) -> None:
        now = asyncio.get_running_loop().time()
        for key, stream in list(self._streams.items()):
            if stream.idle_since is not None and now - stream.idle_since >= linger:
                del self._streams[key]
                await stream.close()
                log.info("stream closed", workflow_id=key[0], chain=key[1], why="no viewers")

    async def close(self) -> None:
        """Close every stream: viewers are told, and their browsers reconnect later."""
        self._closed = True
        streams, self._streams = list(self._streams.values()), {}
        for stream in streams:
            with contextlib.suppress(Exception):
                await stream.close()


__all__ = ["Busy", "Fanout", "Message", "UnknownStream", "Viewer"]
