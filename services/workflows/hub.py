"""Scenario 3: a passive hub that only hosts a stream until told to close."""

from __future__ import annotations

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream

from services.shared.models import HubInput


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
        await workflow.wait_condition(
            lambda: self.closed or workflow.info().is_continue_as_new_suggested()
        )
        if not self.closed:
            # Each subscriber poll is an Update, and a run takes at most
            # 2,000: a hub that lives long hands its log to a fresh run.
            await self.stream.continue_as_new(lambda state: [HubInput(stream_state=state)])
        await workflow.wait_condition(workflow.all_handlers_finished)
