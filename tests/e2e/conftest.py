"""The compose stack under its own project name, torn down with its volumes."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from chaos.compose import compose

ONE_SHOTS = ("order-starter", "publisher", "ticker-fast", "ticker-slow")


class Stack:
    """Read-only views of the running project: states and JSON logs."""

    def states(self) -> dict[str, dict[str, Any]]:
        out = compose("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        return {row["Service"]: row for row in rows}

    def logs(self, service: str) -> list[dict[str, Any]]:
        """Every line the service logged, as JSON (LOG_FORMAT=json is set for e2e)."""
        out = compose("logs", "--no-color", "--no-log-prefix", service).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def wait_until(self, what: str, done: Any, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(1)
        raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}: {self.states()}")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    saved = dict(os.environ)
    os.environ.update(
        COMPOSE_PROJECT_NAME=f"wfs-e2e-{uuid.uuid4().hex[:6]}",
        TEMPORAL_PORT="",  # empty: Docker picks a free loopback port
        TEMPORAL_UI_PORT="",
        LOG_FORMAT="json",
    )
    try:
        compose("up", "--detach", "--build", timeout=900)
        stack = Stack()
        stack.wait_until(
            "temporal to be healthy",
            lambda: stack.states().get("temporal", {}).get("Health") == "healthy",
        )
        yield stack
    finally:
        compose("down", "--volumes", "--remove-orphans", check=False, timeout=300)
        os.environ.clear()
        os.environ.update(saved)


def make(*args: str) -> subprocess.CompletedProcess[str]:
    """Run a Make target as a user would, against this project; echo its output."""
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    print(result.stdout, result.stderr)
    return result
