"""The OpenAI-compatible path: permanent errors fail the turn at once, passing ones are retried.

The hosted model is the one part that cannot run here, so tests/model_server.py
stands in for it: a local HTTP server speaking the real chat-completions
streaming protocol and OpenAI's error bodies. The llm-worker's real ``openai``
client talks to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.client import Client

from services.llm import history
from testkit.jsonlogs import events
from tests import model_server
from tests.llm_support import assert_every_turn_exact, close, converse, llm_worker
from tests.model_server import ModelServer
from tests.processes import Service


@pytest.fixture
def stand_in() -> Iterator[ModelServer]:
    with model_server.model_server() as server:
        yield server


@pytest.fixture
def model_env(env: dict[str, str], task_queue: str, stand_in: ModelServer) -> dict[str, str]:
    return {
        **env,
        "LLM_TASK_QUEUE": task_queue,
        "LLM_BASE_URL": stand_in.base_url,
        "LLM_API_KEY": model_server.KEY,
        "LLM_MODEL": model_server.MODEL,
    }


@pytest.mark.parametrize(
    ("setting", "model", "said"),
    [
        (
            {"LLM_MODEL": "no-such-model"},
            "no-such-model",
            "404 The model `no-such-model` does not exist",
        ),
        (
            {"LLM_API_KEY": "sk-wrong-key-42"},
            model_server.MODEL,
            "401 Incorrect API key provided: sk-***42.",
        ),
    ],
)
async def test_a_permanent_model_error_fails_the_turn_at_once_with_the_servers_message(
    client: Client,
    model_env: dict[str, str],
    stand_in: ModelServer,
    tmp_path: Path,
    setting: dict[str, str],
    model: str,
    said: str,
) -> None:
    worker_env = {**model_env, **setting}
    worker = llm_worker(worker_env, tmp_path / "llm.log")
    conversation = f"assistant-{tmp_path.name[-10:]}"
    assistant_env = {
        **worker_env,
        "ASSISTANT_CONVERSATION_ID": conversation,
        "ASSISTANT_STATE_PATH": str(tmp_path / "assistant.json"),
    }
    assistant = Service("assistant", assistant_env, tmp_path / "assistant.log")
    assistant.start()
    assert await asyncio.to_thread(assistant.wait, 90) == 1
    last = assistant.last()
    assert last["event"] == "giving up" and said in last["cause"]
    recorded = await history.read(client, conversation)
    assert recorded.attempts == {1: 1} and not recorded.answers  # one attempt, no retry
    assert stand_in.requests[model] == 1
    key = worker_env["LLM_API_KEY"]
    for log in (tmp_path / "llm.log", tmp_path / "assistant.log"):
        assert key not in log.read_text(), f"the key reached {log.name}"
    await close(client, conversation)
    assert worker.stop() == 0


async def test_a_passing_model_error_is_retried_and_the_answer_is_exact(
    client: Client,
    model_env: dict[str, str],
    stand_in: ModelServer,
    task_queue: str,
    tmp_path: Path,
) -> None:
    worker = llm_worker(model_env, tmp_path / "llm.log", LLM_MODEL=model_server.FLAKY)
    conversation_id, reader, asked = await converse(client, task_queue, "Are you there?")
    shown = await reader.ended(asked.turn)
    assert shown.status == "complete" and shown.text == model_server.ANSWER
    retries = reader.seen("retry", turn=asked.turn)
    assert [r.data["attempt"] for r in retries] == [2, 3]  # after the 429, after the 500
    assert not reader.seen("failed")
    assert stand_in.requests[model_server.FLAKY] == 3
    recorded = await assert_every_turn_exact(client, reader)
    assert recorded.attempts == {asked.turn: 3}
    lines = events(worker.logs(), "Completing activity as failed")
    assert len(lines) == 2
    await close(client, conversation_id)
    await reader.stop()
    assert worker.stop() == 0
