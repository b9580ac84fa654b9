"""The follower: reads one chain from Temporal, run by run, through faults.

It yields what happened, in order - an event, a move to the next run, the
connection lost or back, the chain closed - and never calls anyone back: the
window above it consumes the updates. A lost or restarting server is ridden
out with the same bounded, logged retries as every other reader (``Backoff``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus

from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS, Backoff, one_line
from services.web.chain import Run, StreamEvent, follow_run, status, successor

log = logs.get(__name__)


@dataclass(frozen=True)
class Moved:
    """The chain continued as new into ``run``; its offsets go on where they were."""

    run: Run


@dataclass(frozen=True)
class Down:
    """Temporal does not answer; ``why`` says what the last call met."""

    why: str


@dataclass(frozen=True)
class Up:
    """Temporal answers again."""


@dataclass(frozen=True)
class Closed:
    """The chain's last run closed (``status``: COMPLETED, TERMINATED, ...) and was drained."""

    status: str


Update = StreamEvent | Moved | Down | Up | Closed


async def follow_chain(
    client: Client, run: Run, *, backoff: Backoff, poll_cooldown: timedelta
) -> AsyncIterator[Update]:
    """Every event of the chain from its current run's retained start, then ``Closed``.

    Raises RunGone when a run of the chain no longer exists, and Fatal for
    an answer retrying cannot change or once the retries are spent (both
    from ``Backoff``); any other error is a bug and propagates as it is.
    """
    offset, down = 0, False
    while True:
        try:
            async with aclosing(
                follow_run(client, run, offset, poll_cooldown=poll_cooldown)
            ) as events:
                async for event in events:
                    if down:
                        down = False
                        yield Up()
                    backoff.succeeded()
                    offset = event.offset + 1
                    yield event
            yield Closed(await _closing_status(client, run))
            return
        except TEMPORAL_ERRORS as err:
            failure = err
        # The poll failed. Either the run continued as new (the library, pinned
        # to it, cannot follow) or the server did not answer: find out which.
        try:
            run_id, run_status = await status(client, run.workflow_id, run.run_id)
            after = None
            if run_status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                after = await successor(client, run.workflow_id, run_id)
        except TEMPORAL_ERRORS as err:
            if not down:
                down = True
                yield Down(one_line(err))
            await backoff.failed(err)
            continue
        if down:
            down = False
            yield Up()
        if after is None:
            # It answers, and the run has not moved on: retry the poll after a pause.
            await backoff.failed(failure)
            continue
        run = Run(run.workflow_id, after, run.chain, WorkflowExecutionStatus.RUNNING)
        log.info("run continued as new", workflow_id=run.workflow_id, run_id=after)
        yield Moved(run)


async def _closing_status(client: Client, run: Run) -> str:
    """How the drained run closed, as a status name."""
    try:
        _, run_status = await status(client, run.workflow_id, run.run_id)
    except TEMPORAL_ERRORS:
        return "CLOSED"
    return run_status.name if run_status is not None else "CLOSED"
