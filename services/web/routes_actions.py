"""HTTP routes that act or read beside the streams: place an order, publish, start a ticker,
ask the assistant, the subscriber's ledger, the page's configuration.

Writes accept only a same-origin JSON POST: a form on another site can
neither send ``application/json`` without a preflight nor fake the
``Origin`` a browser sends with every POST, and the guard has already
checked that the ``Host`` it is compared with is ours.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from services.shared import logs
from services.shared.conversation import ask, model_label
from services.shared.headlines import publish_headlines
from services.shared.ledger import LedgerError, Summary, summarize
from services.shared.models import (
    CONVERSATION_TOPICS,
    FINAL_STAGE,
    MAX_PROMPT_CHARS,
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
from services.shared.ticker import start_ticker
from services.web.errors import temporal
from services.web.guard import origin_host
from services.web.jobs import Jobs
from services.workflows import HubWorkflow, OrderWorkflow

log = logs.get(__name__)

router = APIRouter(prefix="/api")

PUBLISH_JOB = "publish headlines"


async def same_origin_json(request: Request) -> Any:
    """The body of a same-origin JSON POST; otherwise 415, 403 or 400 saying why."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise HTTPException(
            415, f"Content-Type {content_type or 'none'!r} is not accepted; send application/json"
        )
    origin = request.headers.get("origin")
    if origin is not None and origin_host(origin) != request.headers.get("host", "").lower():
        raise HTTPException(403, f"Origin {origin!r} is not this dashboard; writes are same-origin")
    site = request.headers.get("sec-fetch-site")
    if site not in (None, "same-origin"):
        raise HTTPException(403, f"Sec-Fetch-Site {site!r} refused; writes are same-origin")
    try:
        return await request.json()
    except ValueError:
        raise HTTPException(400, "the body is not JSON") from None


async def empty_object(body: Annotated[Any, Depends(same_origin_json)]) -> None:
    """Refuse any body but ``{}``."""
    if body != {}:
        raise HTTPException(400, "this action takes no parameters; send the empty object {}")


Write = Annotated[None, Depends(empty_object)]


@router.post("/orders", status_code=201)
async def place_order(request: Request, _: Write) -> dict[str, str]:
    """Start an order workflow; follow it on ``/events?follow={workflow_id}``."""
    client, settings = _context(request)
    order_id = f"order-{uuid.uuid4().hex[:6]}"
    handle = await temporal(
        client.start_workflow(
            OrderWorkflow.run,
            OrderInput(order_id, settings.charge_seconds),
            id=order_id,
            task_queue=settings.task_queue,
        )
    )
    log.info("order placed", order=order_id, run_id=handle.result_run_id)
    return {"workflow_id": order_id, "run_id": handle.result_run_id or ""}


@router.post("/hub/publish", status_code=202)
async def publish(request: Request, _: Write) -> dict[str, Any]:
    """Start publishing ``PUBLISHER_EVENTS`` headlines (and a final one) into the web's hub.

    Answers at once: the publishing runs as a background job, however long it
    takes; one at a time (409 while one runs).
    """
    client, settings = _context(request)
    jobs: Jobs = request.app.state.jobs
    if jobs.running(PUBLISH_JOB):
        raise HTTPException(409, "a publish is already running; try again when it ends")
    hub_id = settings.web_hub_workflow_id
    await temporal(
        client.start_workflow(
            HubWorkflow.run,
            HubInput(),
            id=hub_id,
            task_queue=settings.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
    )
    source = f"web-{uuid.uuid4().hex[:4]}"
    job = _publish(client, hub_id, settings, source)
    if not jobs.start_once(PUBLISH_JOB, job):
        raise HTTPException(409, "a publish is already running; try again when it ends")
    return {"workflow_id": hub_id, "source": source, "events": settings.publisher_events}


async def _publish(client: Client, hub_id: str, settings: Settings, source: str) -> None:
    sent = await publish_headlines(
        client, hub_id, settings, events=settings.publisher_events, source=source
    )
    log.info("dashboard publish done", workflow_id=hub_id, source=source, published=sent)


@router.post("/ticker", status_code=201)
async def ticker(request: Request, _: Write) -> dict[str, Any]:
    """Start the ticker, or join the one running."""
    client, settings = _context(request)
    handle = await temporal(start_ticker(client, settings))
    return {"workflow_id": handle.id, "run_id": handle.result_run_id or ""}


@router.post("/assistant", status_code=201)
async def assistant(
    request: Request, body: Annotated[Any, Depends(same_origin_json)]
) -> dict[str, Any]:
    """Ask the dashboard's conversation a question: ``{"prompt": "<1..4000 characters>"}``."""
    prompt = _prompt(body)
    client, settings = _context(request)
    question_id = f"q-{uuid.uuid4().hex[:12]}"
    asked = await temporal(
        ask(
            client,
            conversation_id=settings.web_assistant_workflow_id,
            task_queue=settings.llm_task_queue,
            prompt=prompt,
            question_id=question_id,
        )
    )
    log.info("assistant asked", turn=asked.turn, question_id=question_id)
    return {
        "workflow_id": settings.web_assistant_workflow_id,
        "turn": asked.turn,
        "question_id": question_id,
    }


def _prompt(body: Any) -> str:
    if not isinstance(body, dict) or set(body) != {"prompt"}:
        raise HTTPException(400, 'send {"prompt": "<your question>"} and nothing else')
    prompt = body["prompt"]
    if not isinstance(prompt, str):
        raise HTTPException(400, f"prompt is a {type(prompt).__name__}; send a string")
    if not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise HTTPException(
            400,
            f"a prompt of {len(prompt)} characters is not accepted; "
            f"send 1 to {MAX_PROMPT_CHARS} characters, not all blank",
        )
    return prompt


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
        "assistant": {
            "workflow_id": settings.web_assistant_workflow_id,
            "topics": list(CONVERSATION_TOPICS),
            "model": model_label(settings),
            "max_prompt_chars": MAX_PROMPT_CHARS,
        },
    }


def _context(request: Request) -> tuple[Client, Settings]:
    return request.app.state.client, request.app.state.settings
