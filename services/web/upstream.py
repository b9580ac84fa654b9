"""The one upstream subscription of a stream: a chain, run by run, through faults.

A lost or restarting server is ridden out with the same bounded, logged
retries as every other reader (``Backoff``); the follower says whether it is
connected so viewers can show "reconnecting" instead of an error.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from datetime import timedelta

from temporalio.client import Client, WorkflowExecutionStatus

from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS, Backoff, one_line
from services.shared.streams import batched
from services.web.chain import Run, StreamEvent, describe, follow_run, successor

log = logs.get(__name__)

# Events read ahead of the viewers. The next poll goes out while the last
# batch is still being fanned out, so a poll's round trip to Temporal and the
# fan-out overlap instead of adding up: at 1,000 viewers each took about half
# of the time between two events at 10 events/s.
READ_AHEAD = 1000


class ChainFollower:
    """Reads every topic of one chain, following continue-as-new by the chain's own links.

    ``run`` is the run being read; ``down`` says why the upstream is not
    connected, or is None while it is; ``closed_status`` is the final run's
    status once the chain has ended. ``on_change`` is called when any of
    them changes.
    """

    def __init__(
        self,
        client: Client,
        run: Run,
        *,
        backoff: Backoff,
        poll_cooldown: timedelta,
        on_change: Callable[[], None],
    ) -> None:
        self.run = run
        self.down: str | None = None
        self.closed_status = ""
        self._client = client
        self._backoff = backoff
        self._poll_cooldown = poll_cooldown
        self._on_change = on_change

    async def events(self, from_offset: int) -> AsyncIterator[StreamEvent]:
        """Events from ``from_offset`` to the chain's end.

        Raises RunGone when a run of the chain no longer exists, and Fatal
        once the retries are spent (both from ``Backoff``).
        """
        offset = from_offset
        while True:
            reading = follow_run(self._client, self.run, offset, poll_cooldown=self._poll_cooldown)
            try:
                async with (
                    aclosing(reading) as events,  # no poll is left behind
                    batched(events, limit=READ_AHEAD) as batches,
                ):
                    async for batch in batches:
                        for event in batch:
                            offset = event.offset + 1
                            self._up()
                            self._backoff.succeeded()
                            yield event
                await self._finish()
                return
            except TEMPORAL_ERRORS as err:
                await self._recover(err)

    async def _recover(self, failure: BaseException) -> None:
        """Move to the next run after a continue-as-new; otherwise back off and retry.

        "Down" means the server does not answer; a poll that failed while it
        answers is retried after the same pause, without alarming viewers.
        """
        try:
            run = await describe(self._client, self.run.workflow_id, self.run.run_id)
            if run.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                next_id = await successor(self._client, run.workflow_id, run.run_id)
                self.run = await describe(self._client, run.workflow_id, next_id)
        except TEMPORAL_ERRORS as err:
            self._go_down(err)
            await self._backoff.failed(err)
            return
        self._up()
        if self.run.run_id != run.run_id:
            log.info("run continued as new", workflow_id=run.workflow_id, run_id=self.run.run_id)
            self._on_change()
            return
        await self._backoff.failed(failure)

    async def _finish(self) -> None:
        """The run closed and was drained: note how it closed."""
        try:
            self.closed_status = _status_name(
                (await describe(self._client, self.run.workflow_id, self.run.run_id)).status
            )
        except TEMPORAL_ERRORS:
            self.closed_status = "CLOSED"
        self._up()

    def _up(self) -> None:
        if self.down is not None:
            self.down = None
            self._on_change()

    def _go_down(self, error: BaseException) -> None:
        why = one_line(error)
        if self.down != why:
            self.down = why
            self._on_change()


def _status_name(status: WorkflowExecutionStatus | None) -> str:
    return status.name if status is not None else "CLOSED"
