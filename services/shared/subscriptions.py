"""Subscriptions: following one workflow run's stream, through server restarts.

Every service reads a stream the same way: starting at one run, resuming from
the offset after the last item it handled whenever the connection drops,
with bounded, logged retries (``Backoff``), and with the iterator closed on
the way out so no poll is left running. :func:`follow` is that, with a
service's own budget (``RECONNECT_ATTEMPTS``) and ``POLL_COOLDOWN_SECONDS``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, suppress
from datetime import timedelta
from typing import cast

from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient, WorkflowStreamItem

from services.shared.backoff import TEMPORAL_ERRORS, Backoff
from services.shared.settings import Settings


@asynccontextmanager
async def subscription[T](
    client: Client,
    workflow_id: str,
    run_id: str | None,
    topics: str | list[str],
    *,
    result_type: type[T],
    poll_cooldown: timedelta,
    from_offset: int = 0,
) -> AsyncIterator[AsyncIterator[WorkflowStreamItem[T]]]:
    """One subscription to ``topics`` of one run; it ends on the first error.

    The polls go to ``run_id``: a later run under the same workflow id has
    its own log, and its offsets mean nothing here. Once that run has
    continued as new, though, the library does not follow the chain's link:
    it polls whichever run is *current* under the workflow id (an unpinned
    handle). That is the chain's next run only while no other run was
    started under the id, which holds for the hub and the ticker here.
    """
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    items = WorkflowStreamClient(handle, client=client).subscribe(
        topics, from_offset=from_offset, result_type=result_type, poll_cooldown=poll_cooldown
    )
    try:
        yield items
    finally:
        # subscribe() is an async generator; its declared type hides aclose().
        await cast(AsyncGenerator[WorkflowStreamItem[T]], items).aclose()


@asynccontextmanager
async def following[T](
    client: Client,
    workflow_id: str,
    run_id: str | None,
    topics: str | list[str],
    *,
    result_type: type[T],
    backoff: Backoff,
    poll_cooldown: timedelta,
    from_offset: int = 0,
) -> AsyncIterator[AsyncIterator[WorkflowStreamItem[T]]]:
    """Items from ``from_offset`` on, re-subscribing after the last one on a lost server.

    The iterator ends when the run is closed and drained, and raises
    :class:`Fatal` once ``backoff`` runs out of retries.
    """

    async def resuming() -> AsyncGenerator[WorkflowStreamItem[T]]:
        offset = from_offset
        while True:
            try:
                async with subscription(
                    client,
                    workflow_id,
                    run_id,
                    topics,
                    result_type=result_type,
                    poll_cooldown=poll_cooldown,
                    from_offset=offset,
                ) as items:
                    async for item in items:
                        backoff.succeeded()
                        offset = item.offset + 1
                        yield item
                return
            except TEMPORAL_ERRORS as err:
                await backoff.failed(err)

    items = resuming()
    try:
        yield items
    finally:
        await items.aclose()


def follow[T](
    client: Client,
    settings: Settings,
    workflow_id: str,
    run_id: str | None,
    topics: str | list[str],
    *,
    result_type: type[T],
    from_offset: int = 0,
) -> AbstractAsyncContextManager[AsyncIterator[WorkflowStreamItem[T]]]:
    """:func:`following` with ``settings``' retry budget and poll cooldown.

    Its retries are logged and its last failure raised as ``{workflow_id} subscription``.
    """
    return following(
        client,
        workflow_id,
        run_id,
        topics,
        result_type=result_type,
        backoff=Backoff(f"{workflow_id} subscription", settings.reconnect_attempts),
        poll_cooldown=settings.poll_cooldown,
        from_offset=from_offset,
    )


@asynccontextmanager
async def batched[T](
    items: AsyncIterator[T], *, limit: int
) -> AsyncIterator[AsyncIterator[list[T]]]:
    """``items`` grouped by what has already arrived: each list is what one poll delivered.

    A reader task moves items into a bounded queue; each batch is what the
    queue holds when the consumer asks (at most ``limit``), so a caught-up
    reader gets batches of one and a reader catching up gets whole pages.
    The reader's error, if any, is raised after the items before it. On the
    way out the reader is cancelled and awaited before ``items`` is closed.
    """
    queue: asyncio.Queue[T | _End] = asyncio.Queue(maxsize=limit)

    async def read() -> None:
        try:
            async for item in items:
                await queue.put(item)
        except Exception as err:  # handed to the consumer, in order
            await queue.put(_End(err))
        else:
            await queue.put(_End(None))

    async def drain() -> AsyncIterator[list[T]]:
        while True:
            batch: list[T] = []
            end: _End | None = None
            while end is None and len(batch) < limit and (not batch or not queue.empty()):
                got = await queue.get()
                if isinstance(got, _End):
                    end = got
                else:
                    batch.append(got)
            if batch:
                yield batch
            if end is not None:
                if end.error is not None:
                    raise end.error
                return

    reader = asyncio.create_task(read())
    try:
        yield drain()
    finally:
        reader.cancel()
        with suppress(asyncio.CancelledError):
            await reader


class _End:
    """Marks the end of a reader's items, with the error that ended them, if any."""

    def __init__(self, error: Exception | None) -> None:
        self.error = error
