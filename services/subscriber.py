"""subscriber: follows the pipeline and survives being killed at any instant.

It keeps its position in the ledger on the ``/data`` volume (see
``services.shared.ledger``): on start it resumes the open section at the
offset after the last recorded event, or, when the last run is finished,
starts (or joins) the next pipeline run under the fixed workflow id. Each
handle is pinned to its run id, so one run's offsets are never applied to
another.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy

from services.shared import health, logs
from services.shared.backoff import TRANSIENT_ERRORS, Backoff
from services.shared.connect import connect
from services.shared.ledger import Ledger, LedgerError, Position
from services.shared.models import FINAL_STAGE, STAGE_TOPIC, PipelineInput, StageEvent
from services.shared.runner import EXIT_BAD_INPUT, Fatal, run_service
from services.shared.settings import Settings
from services.shared.streams import following
from services.workflows import PipelineWorkflow

log = logs.get(__name__)


async def main(settings: Settings) -> None:
    try:
        ledger = Ledger.open(settings.ledger_path)
    except (LedgerError, OSError) as err:
        raise Fatal(str(err), code=EXIT_BAD_INPUT) from err
    if ledger.repaired_bytes:
        log.warning(
            "repaired torn last line",
            ledger=str(ledger.path),
            dropped_bytes=ledger.repaired_bytes,
            why="killed mid-write; that event was not processed and will be read again",
        )
    client = await connect(settings)
    backoff = Backoff("pipeline subscription", settings.reconnect_attempts)
    async with health.ready(settings.health_file):
        while settings.pipeline_runs == 0 or _finished_runs(ledger) < settings.pipeline_runs:
            try:
                run = await _attach(client, settings, ledger)
                await _follow(client, run, ledger, backoff, settings.poll_cooldown)
                handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
                log.info("workflow result", result=await handle.result())
            except WorkflowFailureError as err:
                log.warning("pipeline run failed", error=str(err.cause or err))
            except TRANSIENT_ERRORS as err:
                await backoff.failed(err)
    log.info("done", runs=_finished_runs(ledger), ledger=str(ledger.path))


async def _attach(client: Client, settings: Settings, ledger: Ledger) -> Position:
    """Resume the open run in the ledger, or start/join the next one."""
    current = ledger.position
    if current is not None and not current.finished:
        log.info(
            "resuming",
            run_id=current.run_id,
            from_offset=current.next_offset,
            why=_resume_reason(current),
        )
    else:
        started = await client.start_workflow(
            PipelineWorkflow.run,
            PipelineInput(settings.pipeline_step_seconds, settings.pipeline_steps_per_stage),
            id=settings.pipeline_workflow_id,
            task_queue=settings.task_queue,
            # Idempotent: after a crash we join the run we already started.
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        run_id = started.result_run_id or ""
        if current is not None and run_id == current.run_id:
            # The run we finished has not closed yet; let it, then start the next.
            await started.result()
            return await _attach(client, settings, ledger)
        ledger.append("section", workflow_id=started.id, run_id=run_id)
        log.info(
            "following new run",
            workflow_id=started.id,
            run_id=run_id,
            why="ledger is empty" if current is None else "previous run is finished",
        )
        current = Position(started.id, run_id, next_offset=0, finished=False)
    # Marks each (re)start in the ledger, so chaos tools can find the seams.
    ledger.append(
        "resume",
        workflow_id=current.workflow_id,
        run_id=current.run_id,
        next_offset=current.next_offset,
    )
    return current


async def _follow(
    client: Client, run: Position, ledger: Ledger, backoff: Backoff, poll_cooldown: timedelta
) -> None:
    """Record every event of ``run`` from its position up to the terminal one."""
    next_offset = run.next_offset
    async with following(
        client,
        run.workflow_id,
        run.run_id,
        STAGE_TOPIC,
        result_type=StageEvent,
        backoff=backoff,
        poll_cooldown=poll_cooldown,
        from_offset=next_offset,
    ) as items:
        async for item in items:
            if item.offset < next_offset:
                continue  # already in the ledger; never record an offset twice
            event = item.data
            ledger.append(
                "event",
                workflow_id=run.workflow_id,
                run_id=run.run_id,
                offset=item.offset,
                stage=event.stage,
                step=event.step,
                steps=event.steps,
            )
            next_offset = item.offset + 1
            log.info(
                "event",
                offset=item.offset,
                stage=event.stage,
                step=f"{event.step}/{event.steps}",
            )
            if event.stage == FINAL_STAGE:
                return
    # The run closed without its terminal event (terminated or failed, say).
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    status = (await handle.describe()).status
    status_name = status.name if status else "UNKNOWN"
    ledger.append("end", workflow_id=run.workflow_id, run_id=run.run_id, status=status_name)
    log.warning("run ended without its terminal event", run_id=run.run_id, status=status_name)


def _finished_runs(ledger: Ledger) -> int:
    return sum(
        1
        for r in ledger.records
        if r["kind"] == "end" or (r["kind"] == "event" and r["stage"] == FINAL_STAGE)
    )


def _resume_reason(position: Position) -> str:
    if position.next_offset == 0:
        return "ledger has this run's section but no event of it yet"
    return f"ledger ends at offset {position.next_offset - 1} of this unfinished run"


if __name__ == "__main__":
    run_service("subscriber", main, one_shot=False)
