"""subscriber: follows the pipeline and survives being killed at any instant.

It keeps its position in the ledger on the ``/data`` volume (see
``services.shared.ledger``): on start it resumes the open section at the
offset after the last recorded event, or, when the last run is finished,
starts (or joins) the next pipeline run under the fixed workflow id. Each
handle is pinned to its run id, so one run's offsets are never applied to
another. A delivered batch is recorded with one write and one fsync.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio.client import Client, WorkflowFailureError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.contrib.workflow_streams import WorkflowStreamItem

from services.shared import health, logs
from services.shared.backoff import TEMPORAL_ERRORS, Backoff, RunGone
from services.shared.connect import connect
from services.shared.ledger import End, Event, Ledger, LedgerError, Position, Resume, Section
from services.shared.models import FINAL_STAGE, STAGE_TOPIC, PipelineInput, StageEvent
from services.shared.runner import EXIT_BAD_INPUT, Fatal, run_service
from services.shared.settings import Settings
from services.shared.subscriptions import batched, following
from services.workflows import PipelineWorkflow

log = logs.get(__name__)

# At most this many events per write+fsync while catching up a backlog.
BATCH_LIMIT = 1000
# A batch larger than this is logged as one line rather than a line per event.
_LOG_EACH_UP_TO = 10


async def main(settings: Settings) -> None:
    try:
        ledger = Ledger.open(settings.ledger_path, keep_runs=settings.ledger_keep_runs)
    except (LedgerError, OSError) as err:
        raise Fatal(str(err), code=EXIT_BAD_INPUT) from err
    try:
        if ledger.repaired_bytes:
            log.warning(
                "repaired torn last line",
                ledger=str(ledger.path),
                dropped_bytes=ledger.repaired_bytes,
                why="killed mid-write; that event was not recorded and will be read again",
            )
        client = await connect(settings)
        backoff = Backoff("pipeline subscription", settings.reconnect_attempts)
        async with health.ready(settings.health_file):
            while settings.pipeline_runs == 0 or ledger.finished_runs < settings.pipeline_runs:
                await _one_run(client, settings, ledger, backoff)
        log.info("done", runs=ledger.finished_runs, ledger=str(ledger.path))
    finally:
        ledger.close()


async def _one_run(client: Client, settings: Settings, ledger: Ledger, backoff: Backoff) -> None:
    """Attach to the current run and record it to its end; transient faults retry."""
    run: Position | None = None
    try:
        run = await _attach(client, settings, ledger)
        if await _follow(client, run, ledger, backoff, settings.poll_cooldown):
            handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
            log.info("workflow result", result=await handle.result())
    except WorkflowFailureError as err:
        log.warning("pipeline run failed", error=str(err.cause or err))
    except RunGone as gone:
        if run is None:
            raise Fatal(str(gone)) from gone
        # Retention, a wiped Temporal volume, another cluster: the run will
        # never deliver the rest, so close its section and move on.
        ledger.append(End(run.workflow_id, run.run_id, status="NOT_FOUND", why=str(gone)))
        log.warning("pinned run is gone; moving on", run_id=run.run_id, why=str(gone))
    except TEMPORAL_ERRORS as err:
        await backoff.failed(err)


async def _attach(client: Client, settings: Settings, ledger: Ledger) -> Position:
    """Resume the open run in the ledger, or start/join the next one."""
    current = ledger.position
    if current is not None and not current.finished:
        why = _resume_reason(current)
        log.info("resuming", run_id=current.run_id, from_offset=current.next_offset, why=why)
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
        ledger.append(Section(started.id, run_id))
        why = "ledger is empty" if current is None else "previous run is finished"
        log.info("following new run", workflow_id=started.id, run_id=run_id, why=why)
        current = Position(started.id, run_id, next_offset=0, finished=False)
    # Marks each (re)attachment in the ledger: the seams the chaos tools check.
    ledger.append(Resume(current.workflow_id, current.run_id, current.next_offset, why=why))
    return current


async def _follow(
    client: Client, run: Position, ledger: Ledger, backoff: Backoff, poll_cooldown: timedelta
) -> bool:
    """Record every event of ``run`` from its position; True once the terminal one is in."""
    next_offset = run.next_offset
    async with (
        following(
            client,
            run.workflow_id,
            run.run_id,
            STAGE_TOPIC,
            result_type=StageEvent,
            backoff=backoff,
            poll_cooldown=poll_cooldown,
            from_offset=next_offset,
        ) as items,
        batched(items, limit=BATCH_LIMIT) as batches,
    ):
        async for batch in batches:
            # Never record an offset twice, and nothing after the terminal event.
            events = _events(run, [i for i in batch if i.offset >= next_offset])
            ledger.append(*events)
            _log_recorded(events)
            if events:
                next_offset = events[-1].offset + 1
                if events[-1].stage == FINAL_STAGE:
                    return True
    # The run closed without its terminal event (terminated or failed, say).
    handle = client.get_workflow_handle(run.workflow_id, run_id=run.run_id)
    status = (await handle.describe()).status
    name = status.name if status else "UNKNOWN"
    ledger.append(End(run.workflow_id, run.run_id, status=name, why="closed before its end"))
    log.warning("run ended without its terminal event", run_id=run.run_id, status=name)
    return False


def _events(run: Position, items: list[WorkflowStreamItem[StageEvent]]) -> list[Event]:
    """Ledger records for ``items``, up to and including a terminal event."""
    events: list[Event] = []
    for item in items:
        stage = item.data
        events.append(
            Event(run.workflow_id, run.run_id, item.offset, stage.stage, stage.step, stage.steps)
        )
        if stage.stage == FINAL_STAGE:
            break
    return events


def _log_recorded(events: list[Event]) -> None:
    if len(events) > _LOG_EACH_UP_TO:
        first, last = events[0], events[-1]
        log.info("caught up", from_offset=first.offset, to_offset=last.offset, events=len(events))
        return
    for event in events:
        log.info(
            "event", offset=event.offset, stage=event.stage, step=f"{event.step}/{event.steps}"
        )


def _resume_reason(position: Position) -> str:
    if position.next_offset == 0:
        return "ledger has this run's section but no event of it yet"
    return f"ledger ends at offset {position.next_offset - 1} of this unfinished run"


if __name__ == "__main__":
    run_service("subscriber", main, one_shot=False)
