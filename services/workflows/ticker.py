"""Scenario 4: a ticker that keeps only its last N events."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState

from services.shared.models import TICK_TOPIC, Tick, TickerInput


@workflow.defn
class TickerWorkflow:
    """Publishes a tick per interval and truncates the log to the last ``keep``."""

    @workflow.init
    def __init__(self, ticker: TickerInput) -> None:
        self.stream = WorkflowStream(prior_state=ticker.stream_state)
        self.ticks = self.stream.topic(TICK_TOPIC, type=Tick)

    @workflow.run
    async def run(self, ticker: TickerInput) -> int:
        for number in range(ticker.next_tick, ticker.ticks):
            final = number == ticker.ticks - 1
            self.ticks.publish(Tick(number, final))
            # Only this workflow publishes, so tick N sits at offset N.
            self.stream.truncate(number + 1 - ticker.keep)
            if final:
                break
            await workflow.sleep(timedelta(seconds=ticker.interval_seconds))
            if workflow.info().is_continue_as_new_suggested():
                await self._continue_as_new(ticker, next_tick=number + 1)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return ticker.ticks

    async def _continue_as_new(self, ticker: TickerInput, *, next_tick: int) -> NoReturn:
        """Hand the retained log and the tick count to a fresh run.

        Every subscriber poll is an Update and a run takes at most 2,000, so a
        ticker that runs for long must move on before it reaches the limit.
        """

        def next_run(state: WorkflowStreamState) -> list[TickerInput]:
            return [dataclasses.replace(ticker, next_tick=next_tick, stream_state=state)]

        await self.stream.continue_as_new(next_run)
