"""The subscriber catching up a large backlog, its ledger written as it goes.

The backlog is pipeline-shaped (``StageEvent``s ending with the terminal
one) and sits in a hub, on a server of its own whose runs are allowed to
grow past it: a pipeline cannot publish 100,000 events in one workflow task
(TMPRL1101), and the hub takes them in bounded batches. The real subscriber
(``python -m services.subscriber``) then joins that workflow as it joins a
running pipeline (its id, ``USE_EXISTING``), records every event with one
write and fsync per delivered batch, and is timed to the terminal event.
The baseline is the same read path with one write and fsync per event.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import datetime

from bench.stack import Memory, Stack, memory, result, stack
from services.shared.models import HubInput
from services.workflows import HubWorkflow

# Nothing suggests or forces a rollover before the backlog is read twice.
WHOLE_BACKLOG = {
    "limit.historySize.suggestContinueAsNew": 400_000_000,
    "limit.historySize.warn": 400_000_000,
    "limit.historySize.error": 400_000_000,
    "limit.historyCount.suggestContinueAsNew": 1_000_000,
    "limit.historyCount.warn": 1_000_000,
    "limit.historyCount.error": 1_000_000,
}


@dataclass(frozen=True)
class CatchUp:
    events: int
    batched_seconds: float  # the subscriber, to its terminal event
    batched_per_s: float
    per_event_seconds: float  # the baseline: one fsync per event
    per_event_per_s: float
    subscriber_memory: Memory | None


async def catch_up(events: int, *, within: float) -> CatchUp:
    """Build a backlog of ``events`` and time both designs reading all of it."""
    async with stack(dynamic_config=WHOLE_BACKLOG) as s:
        hub_id = f"backlog-{uuid.uuid4().hex[:6]}"
        await s.client.start_workflow(
            HubWorkflow.run, HubInput(), id=hub_id, task_queue=s.task_queue
        )
        backlog = await result(
            await s.spawn("bench.load", "stages", f"--hub={hub_id}", f"--events={events}"),
            within=within,
        )
        total = int(backlog.get("published", 0))
        baseline = await result(
            await s.spawn(
                "bench.load",
                "read-per-event",
                f"--hub={hub_id}",
                f"--ledger={s.workdir / 'per-event.jsonl'}",
            ),
            within=within,
        )
        seconds, used = await _subscriber(s, hub_id, last_offset=total - 1, within=within)
        await s.client.get_workflow_handle(hub_id).signal(HubWorkflow.close)
    per_event_seconds = float(baseline.get("seconds", 0)) or float("nan")
    return CatchUp(
        events=total,
        batched_seconds=seconds,
        batched_per_s=total / seconds,
        per_event_seconds=per_event_seconds,
        per_event_per_s=int(baseline.get("recorded", 0)) / per_event_seconds,
        subscriber_memory=used,
    )


async def _subscriber(
    s: Stack, hub_id: str, *, last_offset: int, within: float
) -> tuple[float, Memory | None]:
    """Seconds from the subscriber joining the run to its recording ``last_offset``.

    Both instants are the subscriber's own log timestamps, so process start
    and connecting are left out, as they are from the baseline. Also its
    memory at the end.
    """
    process = await s.spawn(
        "services.subscriber",
        PIPELINE_WORKFLOW_ID=hub_id,
        PIPELINE_RUNS="1",
        LEDGER_PATH=str(s.workdir / "subscriber.jsonl"),
        HEALTH_FILE=str(s.workdir / "subscriber.healthy"),
        LOG_LEVEL="info",
    )
    if process.stdout is None:
        raise RuntimeError("the subscriber's stdout is not piped")
    deadline = time.monotonic() + within
    joined = finished = None
    used: Memory | None = None
    while time.monotonic() < deadline and finished is None:
        line = await process.stdout.readline()
        if not line:
            break
        record = json.loads(line) if line.startswith(b"{") else {}
        if record.get("event") in ("following new run", "resuming"):
            joined = _at(record)
        if last_offset in (record.get("to_offset"), record.get("offset")):
            finished, used = _at(record), memory(process.pid)
    process.kill()  # it would wait on for the workflow's result; the figure is taken
    await process.wait()
    if joined is None or finished is None:
        return float("nan"), used
    return finished - joined, used


def _at(record: dict[str, object]) -> float:
    return datetime.fromisoformat(str(record["timestamp"])).timestamp()
