"""Scenario 2: a multi-stage pipeline that reports every step on one topic."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.contrib.workflow_streams import WorkflowStream

from services.shared.models import (
    FINAL_STAGE,
    STAGE_TOPIC,
    WORK_STAGES,
    PipelineInput,
    StageEvent,
)

# With no pause between steps (PIPELINE_STEP_SECONDS=0), at most this many
# events go out per workflow task: 20,000 in one took 1.5 to 2 s here, and
# 100,000 hit the 2 s deadlock timeout (TMPRL1101).
BURST_PER_TASK = 5_000


@workflow.defn
class PipelineWorkflow:
    """Walks the stages step by step, long enough to kill a subscriber mid-run."""

    @workflow.init
    def __init__(self, pipeline: PipelineInput) -> None:
        self.stream = WorkflowStream()
        self.stages = self.stream.topic(STAGE_TOPIC, type=StageEvent)

    @workflow.run
    async def run(self, pipeline: PipelineInput) -> str:
        steps = pipeline.steps_per_stage
        published = 0
        for stage in WORK_STAGES:
            for step in range(1, steps + 1):
                self.stages.publish(StageEvent(stage, step, steps))
                published += 1
                if pipeline.step_seconds:
                    await workflow.sleep(timedelta(seconds=pipeline.step_seconds))
                elif published % BURST_PER_TASK == 0:
                    # 0 seconds: a backlog for readers, published as fast as can be,
                    # but a workflow task at a time, far inside its 2 s deadlock limit.
                    await workflow.sleep(timedelta(milliseconds=1))
        # The terminal event is in-band, so subscribers stop on it instead of
        # racing the run's close; then in-flight polls get to collect it.
        self.stages.publish(StageEvent(FINAL_STAGE, 1, 1))
        await workflow.wait_condition(workflow.all_handlers_finished)
        info = workflow.info()
        workflow.logger.info("pipeline done", extra={"events": len(WORK_STAGES) * steps + 1})
        return f"pipeline {info.workflow_id} run {info.run_id} done"
