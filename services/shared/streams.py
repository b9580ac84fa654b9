"""Subscribing to one workflow run's stream, with the iterator closed on exit."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import asynccontextmanager
from typing import cast

from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient, WorkflowStreamItem


@asynccontextmanager
async def subscription[T](
    client: Client,
    workflow_id: str,
    run_id: str | None,
    topics: str | list[str],
    *,
    result_type: type[T],
    from_offset: int = 0,
) -> AsyncIterator[AsyncIterator[WorkflowStreamItem[T]]]:
    """Items of ``topics`` from ``from_offset`` on, decoded as ``result_type``.

    The handle is pinned to ``run_id``: a later run under the same workflow
    id has its own log, and its offsets mean nothing here. The iterator is
    closed on exit so no poll is left running when the caller stops early.
    """
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    items = WorkflowStreamClient(handle, client=client).subscribe(
        topics, from_offset=from_offset, result_type=result_type
    )
    try:
        yield items
    finally:
        # subscribe() is an async generator; its declared type hides aclose().
        await cast(AsyncGenerator[WorkflowStreamItem[T]], items).aclose()
