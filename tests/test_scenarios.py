"""The four scenarios, driven in-process against a real dev server and worker."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses

import pytest
from structlog.testing import capture_logs
from temporalio.client import Client

from services import subscriber
from services.order_starter import run_order
from services.shared.ledger import Event, Resume, audit, load
from services.shared.models import (
    FINAL_STAGE,
    WORK_STAGES,
)
from services.shared.settings import Settings
from services.shared.ticker import follow_ticker
from testkit.waiting import eventually

pytestmark = pytest.mark.usefixtures("worker")


async def test_order_prints_the_seed_sequence(client: Client, settings: Settings) -> None:
    settings = dataclasses.replace(settings, order_id="order-1")
    with capture_logs() as logs:
        charge_id = await run_order(client, settings)
    assert charge_id == "charge-order-1"
    stream = [(e["event"], e.get("state") or e.get("message")) for e in logs if "offset" in e]
    assert stream == [
        ("status", "received"),
        ("progress", "charging card..."),
        ("progress", "card charged"),
        ("status", "shipped"),
        ("progress", "charge id: charge-order-1"),
        ("status", "complete"),
    ]
    assert logs[-1] == {"event": "workflow result", "result": "charge-order-1", "log_level": "info"}


async def test_pipeline_resumes_from_the_ledger_where_the_subscriber_stopped(
    settings: Settings, temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subscriber's own path: its ledger, then ``following`` from the next offset."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_address)  # connect() reads the env
    settings = dataclasses.replace(settings, pipeline_steps_per_stage=2, pipeline_runs=1)

    def events() -> list[Event]:
        return [r for r in load(settings.ledger_path) or [] if isinstance(r, Event)]

    first = asyncio.create_task(subscriber.main(settings))
    await eventually(lambda: len(events()) >= 2, what="two recorded events", within=60)
    first.cancel()  # mid-run: the ledger is all the next start knows
    with contextlib.suppress(asyncio.CancelledError):
        await first
    recorded = len(events())
    await subscriber.main(settings)

    records = load(settings.ledger_path) or []
    stages = [(e.offset, e.stage) for e in events()]
    assert stages == list(enumerate([s for s in WORK_STAGES for _ in range(2)] + [FINAL_STAGE]))
    resumes = [r.next_offset for r in records if isinstance(r, Resume)]
    assert resumes == [0, recorded]
    assert audit(records).ok


async def test_fast_ticker_sees_every_offset_and_slow_one_jumps(
    client: Client, settings: Settings
) -> None:
    with capture_logs() as fast_logs:
        assert await follow_ticker(client, settings, delay=0) == 0
    ticks = [e["offset"] for e in fast_logs if e["event"] == "tick"]
    assert ticks == list(range(settings.ticker_ticks))

    slow = dataclasses.replace(settings, ticker_workflow_id=settings.ticker_workflow_id + "-slow")
    with capture_logs() as slow_logs:
        jumps = await follow_ticker(client, slow, delay=slow.ticker_slow_delay_seconds)
    assert jumps >= 1
    for jump in (e for e in slow_logs if e["event"] == "jumped past truncated ticks"):
        assert jump["dropped"] == jump["to_offset"] - jump["from_offset"] > 0
    seen = [e["offset"] for e in slow_logs if e["event"] == "tick"]
    assert seen == sorted(set(seen)) and seen[-1] == slow.ticker_ticks - 1
