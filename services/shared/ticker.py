"""Scenario 4's client side: start (or join) the truncating ticker, and follow it.

Shared by ticker-fast, ticker-slow and the dashboard's ticker button.
Whichever starts first starts the ticker workflow; the others join the same
run. Truncation moves a subscriber that fell behind the retained
base forward silently, so we compare each offset with the one we expected and
report the jump: from which offset to which, and how many ticks were dropped.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from services.shared import logs
from services.shared.models import TICK_TOPIC, Tick, TickerInput
from services.shared.settings import Settings
from services.shared.subscriptions import follow
from services.workflows import TickerWorkflow

log = logs.get(__name__)


async def start_ticker(client: Client, settings: Settings) -> WorkflowHandle[Any, int]:
    """Start the ticker, or join the run already going under its fixed id."""
    return await client.start_workflow(
        TickerWorkflow.run,
        TickerInput(
            ticks=settings.ticker_ticks,
            interval_seconds=settings.ticker_interval_seconds,
            keep=settings.ticker_keep,
        ),
        id=settings.ticker_workflow_id,
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def follow_ticker(client: Client, settings: Settings, *, delay: float) -> int:
    """Read ticks until the final one, sleeping ``delay`` s per tick; return jumps seen."""
    started = await start_ticker(client, settings)
    log.info("following ticker", workflow_id=started.id, run_id=started.result_run_id)
    expected, jumps, seen = 0, 0, 0
    run_id = started.result_run_id
    async with follow(client, settings, started.id, run_id, TICK_TOPIC, result_type=Tick) as items:
        async for item in items:
            if item.offset > expected:
                jumps += 1
                log.warning(
                    "jumped past truncated ticks",
                    from_offset=expected,
                    to_offset=item.offset,
                    dropped=item.offset - expected,
                )
            seen += 1
            expected = item.offset + 1
            log.info("tick", offset=item.offset, tick=item.data.number)
            if item.data.final:
                break
            if delay:
                await asyncio.sleep(delay)
    log.info("final tick", seen=seen, dropped=expected - seen, jumps=jumps)
    return jumps
