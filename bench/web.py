"""python -m bench.web: the web service as its own process, on a free loopback port.

``python -m services.web`` listens on the container's fixed port 8000; the
bench needs a free one. This is the same app (``create_app``) served the same
way (``serving``), configured from the environment as compose configures it
(``WEB_MAX_VIEWERS`` and the rest), under the same runner. Once it listens it
prints ``{"ready": true, "port": N}`` on stdout; SIGTERM stops it.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from typing import TextIO

from bench.channel import figures_channel
from services.shared.connect import connect
from services.shared.runner import run_service
from services.shared.settings import Settings
from services.web.app import create_app
from services.web.server import serving

HOST = "127.0.0.1"


async def main(settings: Settings, *, channel: TextIO) -> None:
    """Serve until SIGTERM; the ready line goes to ``channel``."""
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    client = await connect(settings)
    async with serving(create_app(client, settings), HOST, 0) as port:
        print(json.dumps({"ready": True, "port": port}), file=channel, flush=True)
        await asyncio.Event().wait()  # until SIGTERM cancels us


if __name__ == "__main__":
    # The ready line only on stdout; the service's logs go to stderr.
    ready_out = figures_channel()
    run_service("bench-web", functools.partial(main, channel=ready_out), one_shot=False)
