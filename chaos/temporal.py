"""chaos-temporal: restart the Temporal server (volume kept) mid-stream.

The subscriber service and a ticker reader of our own are mid-stream when
the server goes away. Each must reconnect by itself: the worker and the
subscriber in their containers (Compose restarts neither), the reader in
this process, with the same ``follow`` the services use. Afterwards the
subscriber's ledger must have no gap and no repeat, and the reader must have
seen every tick.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

from temporalio.client import Client

from chaos.engine import Stack, StackSubscriber
from chaos.subscriber import audit_ledger, read, wait_for
from services.shared.connect import connect
from services.shared.ledger import Event, Record
from services.shared.models import TICK_TOPIC, Tick, TickerInput
from services.shared.settings import Settings
from services.shared.subscriptions import follow
from services.workflows import TickerWorkflow
from testkit.waiting import eventually

LONG_RUNNING = ("worker", "subscriber")
# The ticker outlives the restart and keeps enough ticks that a reader who
# reconnects in time misses none.
TICKS, KEEP = 45, 40


async def _read_ticks(
    client: Client, settings: Settings, workflow_id: str, run_id: str | None, ticks: list[int]
) -> None:
    """Append each tick's offset to ``ticks`` until the final one."""
    async with follow(client, settings, workflow_id, run_id, TICK_TOPIC, result_type=Tick) as items:
        async for item in items:
            ticks.append(item.offset)
            if item.data.final:
                return


def _new_event(seen: set[Record]) -> Callable[[list[Record]], bool]:
    """True once the ledger holds an event that was not in ``seen`` (found by value)."""
    return lambda records: any(isinstance(r, Event) and r not in seen for r in records)


async def chaos_temporal(stack: Stack, settings: Settings, say: Callable[[str], None]) -> bool:
    """Restart temporal under load; print and return the verdict."""
    subscriber = StackSubscriber(stack, settings.ledger_path)
    temporal = stack.service("temporal")
    await asyncio.to_thread(
        wait_for, subscriber, _new_event(set()), what="subscriber events", timeout=120
    )
    before = {s: stack.service(s).started_at() for s in LONG_RUNNING}
    client = await connect(settings)
    ticker = await client.start_workflow(
        TickerWorkflow.run,
        TickerInput(ticks=TICKS, interval_seconds=settings.ticker_interval_seconds, keep=KEEP),
        id=f"chaos-ticker-{uuid.uuid4().hex[:6]}",
        task_queue=settings.task_queue,
    )
    ticks: list[int] = []
    reader = asyncio.create_task(
        _read_ticks(client, settings, ticker.id, ticker.result_run_id, ticks)
    )

    async def ticking() -> list[int]:
        if reader.done():
            reader.result()  # raises what ended it early
        return ticks

    try:
        first: list[int] = await eventually(ticking, what="a first tick", within=60)
        say(
            f"subscriber and a ticker reader (at tick {first[-1]}) are mid-stream; "
            "restarting temporal"
        )
        restarted = time.monotonic()
        await asyncio.to_thread(temporal.restart)
        waited = await asyncio.to_thread(temporal.wait_healthy, 120)
        say(
            f"temporal is healthy again {time.monotonic() - restarted:.1f} s after the restart "
            f"began ({waited:.1f} s waiting for health)"
        )
        snapshot = await asyncio.to_thread(read, subscriber)
        seen = set(snapshot or [])
        await asyncio.to_thread(
            wait_for,
            subscriber,
            _new_event(seen),
            what="a subscriber event after the restart",
            timeout=120,
        )
        await asyncio.wait_for(reader, timeout=TICKS * settings.ticker_interval_seconds + 120)
    finally:
        reader.cancel()
    after = {s: stack.service(s).started_at() for s in LONG_RUNNING}
    same = [s for s in LONG_RUNNING if before[s] == after[s]]
    result = audit_ledger(subscriber)
    gapless = ticks == list(range(TICKS))
    say(
        f"reconnected in place (no container restart): {same}; ticker reader: "
        f"ticks {ticks[0]}..{ticks[-1]} gapless={gapless}"
    )
    ok = result.ok and gapless and same == list(LONG_RUNNING)
    print(
        f"verdict: {'PASS' if ok else 'FAIL'}: subscriber events={result.events} "
        f"missing={result.missing.count} repeated={result.repeated.count}; "
        f"ticker complete={gapless}; services reconnected in place={len(same)}/{len(LONG_RUNNING)}",
        flush=True,
    )
    return ok
