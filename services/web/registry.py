"""The registry of open streams: every reader of a stream in this process shares its one window.

Every subscriber poll is an Update, and Temporal allows 10 in flight per
workflow execution, so a poll per browser tab fails at the eleventh. Here a
stream - one chain of one workflow id - is opened on its first reader, shared
by all of them (SSE viewers and HTTP reads alike), and closed
``WEB_LINGER_SECONDS`` after its last one left (so a reconnect in between
finds its window warm). Connections are counted against ``WEB_MAX_VIEWERS``
and, per client address, ``WEB_CLIENT_MAX_VIEWERS``; open streams against
``WEB_MAX_STREAMS``, and the streams one client holds against
``WEB_CLIENT_MAX_STREAMS``.

The one read call, :meth:`Registry.read`, is what the multiplexed SSE
endpoint and the HTTP read protocol both build on.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from temporalio.client import Client
from temporalio.service import RPCError

from services.shared import logs
from services.shared.backoff import is_run_gone
from services.shared.settings import Settings
from services.web.chain import Position, Run, chain_of, last_run, status
from services.web.window import BeyondEnd, Read, Window

log = logs.get(__name__)

# Answers about a workflow id's latest run are shared for this long: many
# viewers waiting for a next run cost one describe per interval, not one each.
LATEST_TTL_S = 0.5
_CHAIN_CACHE = 10_000  # run id -> chain entries kept


class UnknownStream(LookupError):
    """No such workflow id, or no such chain under it; the message says which."""


class WrongChain(ValueError):
    """A position names a run that is not the first run of a chain of this workflow id."""


class Busy(Exception):
    """Past the server's viewer or stream cap, or stopping (a 503); the message says which."""


class TooMany(Exception):
    """One client past its own viewer or stream cap (a 429); the message says which."""


@dataclass
class _Latest:
    at: float
    answer: asyncio.Future[Run | None]


class Registry:
    """The open streams, keyed by (workflow id, chain), and the connections counted per client."""

    def __init__(self, client: Client, settings: Settings) -> None:
        self.viewers = 0
        self._client = client
        self._settings = settings
        self._windows: dict[tuple[str, str], Window] = {}
        self._chains: dict[str, str] = {}  # run id -> its chain
        self._latest: dict[str, _Latest] = {}
        self._per_client: Counter[str] = Counter()
        self._held: dict[str, Counter[tuple[str, str]]] = {}
        self._closed = False

    @property
    def windows(self) -> list[Window]:
        return list(self._windows.values())

    # -- the read API ---------------------------------------------------------------
    async def read(
        self, workflow_id: str, after: Position | None, *, wait: float, max_bytes: int
    ) -> Read:
        """What the stream holds after ``after`` (from the latest chain's start when None).

        Raises UnknownStream, WrongChain, BeyondEnd or Busy (see their
        docstrings); a Temporal error propagates for the caller to classify.
        """
        window = await self.open(workflow_id, after)
        window.users += 1
        window.idle_since = None
        try:
            offset = 0 if after is None else after.offset
            return await window.read(offset, wait=wait, max_bytes=max_bytes)
        finally:
            self._release(window)

    async def latest(self, workflow_id: str) -> Run | None:
        """The id's latest run and its chain, or None while it has none (answers shared briefly)."""
        now = asyncio.get_running_loop().time()
        cached = self._latest.get(workflow_id)
        if cached is None or (cached.answer.done() and now - cached.at > LATEST_TTL_S):
            if len(self._latest) >= _CHAIN_CACHE:
                self._latest.clear()
            cached = _Latest(now, asyncio.ensure_future(self._describe_latest(workflow_id)))
            self._latest[workflow_id] = cached
        # Shielded: one waiter leaving must not cancel the answer the others wait for.
        return await asyncio.shield(cached.answer)

    async def _describe_latest(self, workflow_id: str) -> Run | None:
        try:
            run_id, run_status = await status(self._client, workflow_id, None)
        except RPCError as err:
            if is_run_gone(err):  # not the namespace: that is our configuration
                return None
            raise
        return Run(workflow_id, run_id, await self._chain_of(workflow_id, run_id), run_status)

    async def _chain_of(self, workflow_id: str, run_id: str) -> str:
        if (chain := self._chains.get(run_id)) is None:
            chain = await chain_of(self._client, workflow_id, run_id)
            if len(self._chains) >= _CHAIN_CACHE:
                self._chains.clear()
            self._chains[run_id] = chain
        return chain

    # -- opening and sharing streams ----------------------------------------------
    async def open(self, workflow_id: str, after: Position | None) -> Window:
        """The stream's window, opened if need be (at the latest chain when ``after`` is None)."""
        if self._closed:
            raise Busy("the server is stopping; reconnect in a moment")
        if after is not None and (found := self._open_window(workflow_id, after.chain)):
            return found
        run = await self._current_run(workflow_id, after)
        if len(self._windows) >= self._settings.web_max_streams:
            await self.reap(linger=0)  # lingering streams make room first
        # Checked after the waits above, in which others may have come and gone.
        if found := self._open_window(workflow_id, run.chain):
            return found
        if self._closed:
            raise Busy("the server is stopping; reconnect in a moment")
        if len(self._windows) >= self._settings.web_max_streams:
            raise Busy(
                f"{len(self._windows)} streams open; WEB_MAX_STREAMS is "
                f"{self._settings.web_max_streams}"
            )
        window = Window(self._client, run, self._settings)
        self._windows[(workflow_id, run.chain)] = window
        return window

    def _open_window(self, workflow_id: str, chain: str) -> Window | None:
        """The open window of the chain; a failed one is forgotten so that a fresh one starts."""
        window = self._windows.get((workflow_id, chain))
        if window is not None and window.failed is not None:
            self._windows.pop((workflow_id, chain), None)
            return None
        return window

    async def _current_run(self, workflow_id: str, after: Position | None) -> Run:
        """The run a reader at ``after`` reads now: the chain's newest (the id's, if None)."""
        if after is None:
            latest = await self.latest(workflow_id)
            if latest is None:
                raise UnknownStream(f"no workflow {workflow_id!r} in this namespace")
            return latest
        try:
            chain = await self._chain_of(workflow_id, after.chain)
            if chain != after.chain:
                raise WrongChain(
                    f"run {after.chain} of {workflow_id!r} is not the first run of a chain "
                    f"(its chain is {chain}); use a position this server sent"
                )
            run_id, run_status = await last_run(self._client, workflow_id, chain)
        except RPCError as err:
            if not is_run_gone(err):
                raise
            raise UnknownStream(
                f"workflow {workflow_id!r} has no run chain {after.chain!r} (any more); "
                "start again without a position to follow its latest run"
            ) from err
        return Run(workflow_id, run_id, chain, run_status)

    @contextlib.asynccontextmanager
    async def viewing(
        self, workflow_id: str, after: Position | None, *, client: str
    ) -> AsyncIterator[Window]:
        """The stream's window, held by one viewer of ``client`` while the block runs."""
        window = await self.open(workflow_id, after)
        key = (workflow_id, window.chain)
        held = self._held.setdefault(client, Counter())
        cap = self._settings.web_client_max_streams
        if key not in held and len(held) >= cap:
            raise TooMany(
                f"this client already follows {len(held)} streams; WEB_CLIENT_MAX_STREAMS is {cap}"
            )
        held[key] += 1
        window.users += 1
        window.idle_since = None
        try:
            yield window
        finally:
            held[key] -= 1
            if held[key] <= 0:
                del held[key]
            if not held:
                self._held.pop(client, None)
            self._release(window)

    def _release(self, window: Window) -> None:
        window.users -= 1
        if window.users == 0:
            window.idle_since = asyncio.get_running_loop().time()

    @contextlib.contextmanager
    def connection(self, client: str) -> Iterator[None]:
        """One SSE connection of ``client``, counted against the caps while the block runs."""
        if self._closed:
            raise Busy("the server is stopping; reconnect in a moment")
        cap = self._settings.web_max_viewers
        if self.viewers >= cap:
            raise Busy(f"{self.viewers} viewers connected; WEB_MAX_VIEWERS is {cap}")
        own = self._settings.web_client_max_viewers
        if self._per_client[client] >= own:
            raise TooMany(
                f"this client has {self._per_client[client]} connections open; "
                f"WEB_CLIENT_MAX_VIEWERS is {own}"
            )
        self.viewers += 1
        self._per_client[client] += 1
        try:
            yield
        finally:
            self.viewers -= 1
            self._per_client[client] -= 1
            if self._per_client[client] <= 0:
                del self._per_client[client]

    # -- closing ----------------------------------------------------------------------
    async def reap_idle(self) -> None:
        """Close streams that have had no reader for ``WEB_LINGER_SECONDS``, forever."""
        linger = self._settings.web_linger_seconds
        while True:
            await asyncio.sleep(min(1.0, max(0.05, linger / 2)))
            await self.reap(linger)

    async def reap(self, linger: float) -> None:
        """Close the streams idle for ``linger`` seconds or more.

        Each window is taken out of the registry before anything awaits, and
        only by the reap that took it, so two reaps at once (the reaper's and
        a join making room) never close or remove one window twice.
        """
        now = asyncio.get_running_loop().time()
        taken = [
            (key, window)
            for key, window in self._windows.items()
            if window.idle_since is not None and now - window.idle_since >= linger
        ]
        for key, _ in taken:
            del self._windows[key]
        for (workflow_id, chain), window in taken:
            await window.close()
            log.info("stream closed", workflow_id=workflow_id, chain=chain, why="no readers")

    async def close(self) -> None:
        """Close every stream: viewers are told, and their browsers reconnect later."""
        self._closed = True
        windows, self._windows = list(self._windows.values()), {}
        for window in windows:
            with contextlib.suppress(Exception):
                await window.close()


__all__ = ["BeyondEnd", "Busy", "Read", "Registry", "TooMany", "UnknownStream", "WrongChain"]
