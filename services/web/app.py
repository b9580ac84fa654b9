"""The ASGI app: the guard, the routes, the page, and the supervised background work.

Data goes one way: a request enters a route (``routes_events``,
``routes_streams``, ``routes_actions``), which asks the ``registry`` of open
streams; the registry hands out one ``window`` per stream, whose ``follower``
reads Temporal through ``chain``, at the bottom.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from temporalio.client import Client

from services.shared.settings import Settings
from services.web import durable, routes_actions, routes_events, routes_streams
from services.web.guard import Guard
from services.web.jobs import Jobs
from services.web.registry import Registry

STATIC = Path(__file__).resolve().parent / "static"
REAPER = "reap idle streams"


def create_app(client: Client, settings: Settings) -> FastAPI:
    """The dashboard app on ``client``; ``app.state.registry`` holds the open streams."""
    registry = Registry(client, settings)
    jobs = Jobs()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        jobs.keep_running(REAPER, registry.reap_idle)
        try:
            yield
        finally:
            try:
                await jobs.close()
            finally:  # whatever the jobs did, the streams are closed
                await registry.close()

    # No /docs or /redoc: their pages load scripts from a CDN.
    app = FastAPI(
        title="Workflow Streams dashboard", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.client = client
    app.state.settings = settings
    app.state.registry = registry
    app.state.jobs = jobs
    app.include_router(routes_events.router)
    app.include_router(routes_streams.router)
    app.include_router(routes_actions.router)
    app.include_router(durable.router)  # the Durable Streams read protocol, /v1/streams/
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.add_middleware(Guard, allowed_hosts=settings.web_allowed_hosts)
    return app


__all__ = ["create_app"]
