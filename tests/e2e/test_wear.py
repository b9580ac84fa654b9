"""What months of running under compose bring: settings that reach the containers, health,
and a refusal that holds instead of restarting in a loop."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest

from tests.e2e.cli import compose, docker
from tests.e2e.conftest import Stack, make

pytestmark = pytest.mark.e2e


def test_a_setting_exported_in_the_shell_reaches_the_container(stack: Stack) -> None:
    order_id = f"e2e-order-{uuid.uuid4().hex[:6]}"
    os.environ["ORDER_ID"] = order_id
    try:
        result = make("order-starter")
    finally:
        del os.environ["ORDER_ID"]
    assert result.returncode == 0, result.stdout[-2000:]
    placed = [line for line in stack.logs("order-starter") if line["event"] == "order placed"]
    assert placed[-1]["order"] == order_id


def test_long_running_services_report_healthy(stack: Stack) -> None:
    stack.wait_until(
        "worker and subscriber to be healthy",
        lambda: all(stack.states()[s]["Health"] == "healthy" for s in ("worker", "subscriber")),
    )


def test_a_refused_ledger_holds_one_refusal_unhealthy_without_restarting(stack: Stack) -> None:
    compose("stop", "subscriber")
    damage = "echo GARBAGE >> /data/events.jsonl"
    compose("run", "--rm", "--no-deps", "--entrypoint", "sh", "subscriber", "-c", damage)
    compose("start", "subscriber")
    try:
        stack.wait_until(
            "the subscriber to be reported unhealthy",
            lambda: stack.states()["subscriber"]["Health"] == "unhealthy",
            timeout=120,
        )
        container = compose("ps", "--quiet", "subscriber").stdout.strip()
        state = json.loads(docker("inspect", container))[0]
        assert state["State"]["Running"] and state["RestartCount"] == 0
        since = state["State"]["StartedAt"]
        refusals = [
            line
            for line in _logs_since(container, since)
            if line["event"] == "giving up" and "make reset-subscriber" in line["cause"]
        ]
        assert len(refusals) == 1 and refusals[0]["exit_code"] == 2
    finally:
        result = make("reset-subscriber")
        assert result.returncode == 0, result.stdout[-2000:]
    stack.wait_until(
        "the subscriber to start over and be healthy",
        lambda: stack.states()["subscriber"]["Health"] == "healthy",
        timeout=120,
    )


def _logs_since(container: str, since: str) -> list[dict[str, Any]]:
    out = docker("logs", "--since", since, container)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]
