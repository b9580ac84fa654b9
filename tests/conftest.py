"""A real Temporal dev server per test session; a worker per test on its own queue."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from services.shared.settings import Settings
from services.worker import build_worker
from testkit.devserver import DevServer, dev_server


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
