"""The ASGI app: routes, the page, and the fan-out's background work in its lifespan."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from temporalio.client import Client

from services.shared.settings import Settings
from services.web import actions, streams
from services.web.fanout import Fanout

STATIC = Path(__file__).resolve().parent / "static"


def create_app(client: Client, settings: Settings) -> FastAPI:
    """The dashboard app on ``client``; ``app.state.fanout`` holds the open streams."""
    fanout = Fanout(client, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        reaper = asyncio.create_task(fanout.reap_idle(), name="reap idle streams")
        try:
            yield
        finally:
            reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reaper
            await fanout.close()

    # No /docs or /redoc: their pages load scripts from a CDN.
    app = FastAPI(
        title="Workflow Streams dashboard", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.client = client
    app.state.settings = settings
    app.state.fanout = fanout
    app.state.publishing = asyncio.Lock()
    app.include_router(streams.router)
    app.include_router(actions.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    return app
