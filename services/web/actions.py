"""HTTP routes that act or read beside the streams: place an order, publish, start a
ticker, the subscriber's ledger, the page's configuration.

Writes accept only a same-origin JSON POST of an empty object: a form on
another site can neither send ``application/json`` without a preflight nor
fake the ``Origin`` a browser sends with every POST.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, HTTPException, Request
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from services import ticker
from services.publisher import publish_headlines
from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS, one_line
from services.shared.ledger import LedgerError, Summary, summarize
from services.shared.models import (
    FINAL_STAGE,
    NEWS_TOPIC,
    PROGRESS_TOPIC,
    STAGE_TOPIC,
    STATUS_TOPIC,
    TICK_TOPIC,
    WORK_STAGES,
    HubInput,
    OrderInput,
)
from services.shared.settings import Settings
from services.workflows import HubWorkflow, OrderWorkflow

log = logs.get(__name__)

router = APIRouter(prefix="/api")

# A write that takes longer has met a Temporal that does not answer.
TEMPORAL_TIMEOUT_S = 30.0


async def same_origin_json(request: Request) -> None:
    """Refuse a write that is not a same-origin JSON POST of ``{}``, saying why."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(
            415, f"Content-Type {content_type or 'none'!r} is not accepted; send application/json"
        )
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, f"Origin {origin!r} is not this dashboard; writes are same-origin")
    site = request.headers.get("sec-fetch-site")
    if site not in (None, "same-origin"):
        raise HTTPException(403, f"Sec-Fetch-Site {site!r} refused; writes are same-origin")
    try:
        body = await request.json()
    except ValueError:
        raise HTTPException(400, "the body is not JSON; send {}") from None
    if body != {}:
        raise HTTPException(400, "this action takes no parameters; send the empty object {}")


Write = Annotated[None, Depends(same_origin_json)]


@router.post("/orders", status_code=201)
async def place_order(request: Request, _: Write) -> dict[str, str]:
    """Start an order workflow; its stream is ``/streams/{workflow_id}``."""
    client, settings = _context(request)
    order_id = f"order-{uuid.uuid4().hex[:6]}"
    handle = await _temporal(
        client.start_workflow(
            OrderWorkflow.run,
            OrderInput(order_id, settings.charge_seconds),
            id=order_id,
            task_queue=settings.task_queue,
        )
    )
    log.info("order placed", order=order_id, run_id=handle.result_run_id)
    return {"workflow_id": order_id, "run_id": handle.result_run_id or ""}


@router.post("/hub/publish")
async def publish(request: Request, _: Write) -> dict[str, Any]:
    """Publish ``PUBLISHER_EVENTS`` headlines (and a final one) into the web's hub."""
    client, settings = _context(request)
    lock: asyncio.Lock = request.app.state.publishing
    if lock.locked():
        raise HTTPException(409, "a publish is already running; try again when it ends")
    async with lock:
        hub_id = settings.web_hub_workflow_id
        await _temporal(
            client.start_workflow(
                HubWorkflow.run,
                HubInput(),
                id=hub_id,
                task_queue=settings.task_queue,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        )
        source = f"web-{uuid.uuid4().hex[:4]}"
        sent = await _temporal(
            publish_headlines(
                client, hub_id, settings, events=settings.publisher_events, source=source
            )
        )
    return {"workflow_id": hub_id, "source": source, "published": sent}


@router.post("/ticker", status_code=201)
async def start_ticker(request: Request, _: Write) -> dict[str, Any]:
    """Start the ticker, or join the one running; its stream is ``/streams/{workflow_id}``."""
    client, settings = _context(request)
    handle = await _temporal(ticker.start_ticker(client, settings))
    return {"workflow_id": handle.id, "run_id": handle.result_run_id or ""}


@router.get("/ledger")
async def ledger(request: Request) -> dict[str, Any]:
    """The subscriber's ledger as it stands (read-only, never locked)."""
    path = request.app.state.settings.ledger_path
    try:
        summary, modified = await asyncio.to_thread(_read_ledger, path)
    except LedgerError as err:
        return {"state": "damaged", "path": str(path), "error": str(err)}
    if summary is None:
        return {"state": "absent", "path": str(path)}
    return {"state": "ok", "path": str(path), "modified": modified, **asdict(summary)}


def _read_ledger(path: Path) -> tuple[Summary | None, str | None]:
    summary = summarize(path)
    if summary is None:
        return None, None
    mtime = path.stat().st_mtime
    return summary, datetime.fromtimestamp(mtime, UTC).isoformat(timespec="milliseconds")


@router.get("/config")
async def config(request: Request) -> dict[str, Any]:
    """What the page needs to know: workflow ids, topics, stages, the ticker's window."""
    settings: Settings = request.app.state.settings
    return {
        "orders": {"topics": [STATUS_TOPIC, PROGRESS_TOPIC]},
        "pipeline": {
            "workflow_id": settings.pipeline_workflow_id,
            "topics": [STAGE_TOPIC],
            "stages": list(WORK_STAGES),
            "final": FINAL_STAGE,
        },
        "hub": {
            "workflow_id": settings.web_hub_workflow_id,
            "topics": [NEWS_TOPIC],
            "events": settings.publisher_events,
        },
        "ticker": {
            "workflow_id": settings.ticker_workflow_id,
            "topics": [TICK_TOPIC],
            "ticks": settings.ticker_ticks,
            "keep": settings.ticker_keep,
            "slow_delay_seconds": settings.ticker_slow_delay_seconds,
        },
    }


def _context(request: Request) -> tuple[Client, Settings]:
    return request.app.state.client, request.app.state.settings


async def _temporal[T](call: Awaitable[T]) -> T:
    """Await a Temporal call, bounded; a fault becomes a 503 naming it."""
    try:
        async with asyncio.timeout(TEMPORAL_TIMEOUT_S):
            return await call
    except TimeoutError:
        raise HTTPException(
            503, f"Temporal did not answer within {TEMPORAL_TIMEOUT_S:.0f} s", {"Retry-After": "5"}
        ) from None
    except TEMPORAL_ERRORS as err:
        raise HTTPException(
            503, f"Temporal refused: {one_line(err)}", {"Retry-After": "5"}
        ) from None
