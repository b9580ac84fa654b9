"""web: serves the dashboard on WEB_LISTEN_PORT, 8000 (compose publishes it on 127.0.0.1 only)."""

from __future__ import annotations

import asyncio
import logging

from services.shared import health, logs
from services.shared.connect import connect
from services.shared.runner import run_service
from services.shared.settings import Settings
from services.web.app import create_app
from services.web.server import serving

log = logs.get(__name__)

# Inside its container the service listens on every interface; the host sees
# it only where compose publishes it (127.0.0.1:WEB_PORT).
HOST = "0.0.0.0"  # noqa: S104


async def main(settings: Settings) -> None:
    # uvicorn's own start-up chatter; its warnings and errors still show.
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    client = await connect(settings)
    app = create_app(client, settings)
    async with (
        serving(app, HOST, settings.web_listen_port) as port,
        health.ready(settings.health_file),
    ):
        log.info(
            "dashboard ready",
            port=port,
            max_viewers=settings.web_max_viewers,
            replay_events=settings.web_replay_events,
        )
        await asyncio.Event().wait()  # until SIGTERM cancels us


if __name__ == "__main__":
    run_service("web", main, one_shot=False)
