"""Scenario 3: a passive hub that only hosts a stream until told to close."""

from __future__ import annotations

import functools
from datetime import timedelta

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream

from services.shared.models import HubInput

# What a rollover may carry to the next run. The carried log is one payload:
# past 512 KiB the SDK and server warn, past 2 MiB the workflow task fails.
CARRY_BUDGET_BYTES = 256 * 1024
# Roll over once history has not grown for this long (no publishes, no polls
# returning items: readers have drained), or after MAX_WAIT regardless.
QUIET = timedelta(seconds=2)
MAX_WAIT = timedelta(seconds=60)


@workflow.defn
class HubWorkflow:
    """Does no work of its own; outside publishers feed its stream."""

    @workflow.init
    def __init__(self, hub: HubInput) -> None:
        self.stream = WorkflowStream(prior_state=hub.stream_state)
        self.closed = False

    @workflow.signal
    def close(self) -> None:
        self.closed = True

    @workflow.run
    async def run(self, hub: HubInput) -> None:
        # Each subscriber poll is an Update and a run takes at most 2,000, so
        # a hub that lives long hands its stream to a fresh run when the
        # server suggests it.
        await workflow.wait_condition(
            lambda: self.closed or workflow.info().is_continue_as_new_suggested()
        )
        if not self.closed and await self._quiet_moment():
            self._bound_carried_log()
            await self.stream.continue_as_new(lambda state: [HubInput(stream_state=state)])
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _quiet_moment(self) -> bool:
        """Wait for history to stop growing; False if we were closed meanwhile."""
        waited = timedelta()
        while not self.closed and waited < MAX_WAIT:
            seen = workflow.info().get_current_history_length()
            try:
                await workflow.wait_condition(functools.partial(self._stirred, seen), timeout=QUIET)
            except TimeoutError:
                break
            waited += QUIET  # an upper bound: each pass lasts at most QUIET
        return not self.closed

    def _stirred(self, history_length: int) -> bool:
        return self.closed or workflow.info().get_current_history_length() != history_length

    def _bound_carried_log(self) -> None:
        """Keep only the newest events that fit the carry budget.

        A reader further behind than that, at the moment of rollover, jumps
        forward to the new base, exactly as after ``truncate``.
        """
        state = self.stream.get_state()
        kept, end = 0, state.base_offset + len(state.log)
        cut = end
        for item in reversed(state.log):
            kept += len(item.data) + len(item.topic)
            if kept > CARRY_BUDGET_BYTES:
                break
            cut -= 1
        if cut > state.base_offset:
            workflow.logger.warning(
                "rolling over with a bounded log",
                extra={"dropped": cut - state.base_offset, "carried": end - cut},
            )
            self.stream.truncate(cut)
