"""A real Temporal dev server per test session; a worker per test on its own queue.

Services run either in process (``settings`` + ``worker``) or as OS processes
the way compose runs them (``env`` + ``worker_process``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from services.shared.settings import Settings
from services.worker import build_worker
from testkit.devserver import DevServer, dev_server
from tests.processes import Service, kill_leftovers


@pytest.fixture(scope="session")
async def server() -> AsyncIterator[DevServer]:
    async with dev_server() as running:
        yield running


@pytest.fixture(scope="session")
def temporal_address(server: DevServer) -> str:
    return server.address


@pytest.fixture(scope="session")
def client(server: DevServer) -> Client:
    return server.client


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
        health_file=tmp_path / "healthy",
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


@pytest.fixture(autouse=True)
def no_leftover_processes() -> Iterator[None]:
    """After each test, end any service process it started and did not stop."""
    yield
    kill_leftovers()


@pytest.fixture
def env(temporal_address: str, task_queue: str) -> dict[str, str]:
    """Environment for a service process: this session's server, this test's queue."""
    return {"TEMPORAL_ADDRESS": temporal_address, "TASK_QUEUE": task_queue}


@pytest.fixture
def worker_process(env: dict[str, str], tmp_path: Path) -> Iterator[Service]:
    """``python -m services.worker`` on this test's queue; it must drain and exit 0."""
    worker = Service("worker", env, tmp_path / "worker.log")
    worker.start()
    worker.wait_for_log("worker ready")
    yield worker
    assert worker.stop() == 0, "SIGTERM must drain the worker and exit 0"
    assert worker.wait_for_log("stopped")["signal"] == "SIGTERM"
