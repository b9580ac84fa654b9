"""Running the app with uvicorn inside the service runner (which owns the signals)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI

from services.shared.runner import Fatal
from services.web.registry import Registry

# Viewers are released before uvicorn stops; this bounds what is left.
GRACEFUL_SHUTDOWN_S = 5


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: ``run_service`` handles SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: FastAPI, host: str, port: int) -> AsyncIterator[int]:
    """Serve ``app`` on ``host:port`` (0: a free port) while the block runs; yield the port.

    On the way out, the viewers are released first (their browsers reconnect
    to the next server), then uvicorn stops accepting and finishes.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # our logging, configured once by the runner
        access_log=False,  # a line per request would drown the logs
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(), name="uvicorn")
    try:
        while not server.started:
            if task.done():
                raise Fatal(f"the web server did not start on {host}:{port} (see above)")
            await asyncio.sleep(0.05)
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        registry: Registry = app.state.registry
        await registry.close()
        server.should_exit = True
        with contextlib.suppress(SystemExit):
            await task
