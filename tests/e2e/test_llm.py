"""Scenario 5 on the compose stack: the assistant's answer, and `make chaos-llm` without Python."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import Stack, make
from tests.e2e.test_chaos import CALLED, bare_host

pytestmark = pytest.mark.e2e
__all__ = ["bare_host"]  # the fixture: a host with Docker, Compose and make, and no Python


def test_the_assistant_exits_zero_saying_its_text_equals_the_result(stack: Stack) -> None:
    stack.wait_until(
        "the assistant to finish",
        lambda: stack.states().get("assistant", {}).get("State") == "exited",
    )
    assert stack.states()["assistant"]["ExitCode"] == 0
    lines = stack.logs("assistant")
    (closing,) = [line for line in lines if line["event"] == "answer complete"]
    assert closing["matches_result"] is True
    assert closing["model"].startswith("offline")
    shown = "".join(line["text"] for line in lines if line["event"] == "answer")
    assert len(shown) == closing["chars"] > 0
    assert stack.states()["llm-worker"]["Health"] == "healthy"


def test_make_chaos_llm_sees_the_retry_and_the_exact_text(
    stack: Stack, bare_host: dict[str, str]
) -> None:
    stack.wait_until(
        "the llm-worker to be healthy",
        lambda: stack.states().get("llm-worker", {}).get("Health") == "healthy",
    )
    result = make("chaos-llm", env=bare_host)
    assert CALLED not in result.stdout + result.stderr
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "killed the llm-worker (SIGKILL) mid-answer" in result.stdout
    assert "started over: discarded" in result.stdout
    assert "verdict: PASS" in result.stdout and "rendered text == result=True" in result.stdout
    stack.wait_until(
        "the llm-worker to be healthy again",
        lambda: stack.states().get("llm-worker", {}).get("Health") == "healthy",
    )
