"""Scenario 5 under faults: what a separate reader renders equals each turn's result.

The llm-worker and the assistant run as OS processes (offline model) against
the session's dev server; the reader in this process renders with the same
``Transcript`` as every consumer, and the truth is the ``stream_completion``
result recorded in the workflow's history.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest
from temporalio.client import Client

from services.llm import history
from services.shared.conversation import Discarded
from testkit.jsonlogs import events
from testkit.waiting import eventually
from tests.llm_support import (
    Reader,
    assert_every_turn_exact,
    close,
    converse,
    llm_worker,
    logged,
)
from tests.processes import Service

# Short enough for a lean suite, long enough that a fault lands mid-answer.
OFFLINE = {"LLM_HEARTBEAT_TIMEOUT_SECONDS": "2", "LLM_OFFLINE_TOKENS_PER_SECOND": "30"}


@pytest.fixture
def llm_env(env: dict[str, str], task_queue: str) -> dict[str, str]:
    return {**env, "LLM_TASK_QUEUE": task_queue, **OFFLINE}


async def test_llm_worker_killed_mid_answer_the_retry_is_rendered_exactly(
    client: Client, llm_env: dict[str, str], tmp_path: Path
) -> None:
    """The assistant asks and shows the answer; a separate reader renders it too."""
    first = llm_worker(llm_env, tmp_path / "llm-1.log")
    assistant = _assistant(llm_env, tmp_path)
    assistant.start()
    asked = await logged(assistant, "asked")
    reader = Reader(client, assistant.env["ASSISTANT_CONVERSATION_ID"])
    reader.start()
    await reader.wait_for("delta", turn=asked["turn"], attempt=1)
    first.kill()  # SIGKILL mid-answer: attempt 1 never finishes
    second = llm_worker(llm_env, tmp_path / "llm-2.log")
    assert await asyncio.to_thread(assistant.wait, 90) == 0, assistant.logs()[-3:]
    shown = await reader.ended(asked["turn"])
    assert shown.status == "complete"
    retry = await reader.wait_for("retry", turn=asked["turn"])
    assert retry.data["attempt"] >= 2 and retry.data["discarded_from"] == retry.data["attempt"] - 1
    assert [c for c in reader.changes if isinstance(c, Discarded)], "the rewind was not rendered"
    recorded = await assert_every_turn_exact(client, reader)
    answer = recorded.answers[asked["turn"]]
    assert answer.attempt >= 2
    # The assistant said what it threw away, and then showed exactly the result.
    logs = assistant.logs()
    (discarded,) = events(logs, "attempt discarded")
    assert discarded["attempt"] == 1 and discarded["started_over"] == retry.data["attempt"]
    assert discarded["why"] == retry.data["why"]
    after = logs[logs.index(discarded) :]
    assert "".join(line["text"] for line in events(after, "answer")) == answer.text
    assert events(logs, "answer complete")[0]["matches_result"] is True
    await close(client, reader.conversation_id)
    await reader.stop()
    assert second.stop() == 0


def _assistant(llm_env: dict[str, str], tmp_path: Path) -> Service:
    env = {
        **llm_env,
        "ASSISTANT_CONVERSATION_ID": f"assistant-{tmp_path.name[-12:]}",
        "ASSISTANT_STATE_PATH": str(tmp_path / "assistant.json"),
        "ASSISTANT_PROMPT": "Tell me about offsets.",
    }
    return Service("assistant", env, tmp_path / "assistant.log")


async def test_a_zombie_attempts_late_deltas_reach_the_log_but_not_the_rendered_text(
    client: Client, llm_env: dict[str, str], task_queue: str, tmp_path: Path
) -> None:
    """Worker A is paused past the heartbeat timeout while B runs attempt 2, then resumed."""
    workers = [llm_worker(llm_env, tmp_path / f"llm-{n}.log") for n in "ab"]
    for worker in workers:
        await logged(worker, "llm-worker ready")
    conversation_id, reader, asked = await converse(client, task_queue, "What is a zombie?")
    await reader.wait_for("delta", turn=asked.turn, attempt=1)
    first = next(w for w in workers if events(w.logs(), "answering"))
    process = first.process
    assert process is not None
    os.kill(process.pid, signal.SIGSTOP)
    try:
        # A retry streaming on the live worker. (Attempt 2 itself may go to the
        # paused one, whose polls were already waiting at the server; then the
        # live worker gets attempt 3.)
        retried = await eventually(
            lambda: [i for i in reader.seen("delta", turn=asked.turn) if i.data["attempt"] >= 2],
            what="a retry streaming on the other worker",
        )
    finally:
        os.kill(process.pid, signal.SIGCONT)
    current = retried[0].data["attempt"]
    assert (await reader.ended(asked.turn)).status == "complete"
    # The zombie wakes, publishes what it had, and is cancelled at its next heartbeat.
    late = await eventually(
        lambda: [
            i
            for i in reader.seen("delta", turn=asked.turn)
            if i.data["attempt"] < current and i.offset > retried[0].offset
        ],
        what="the paused attempt's late deltas after the retry's",
        within=30,
    )
    await logged(first, "attempt cancelled")
    assert late, "the fence was not exercised"
    assert reader.transcript.turns[asked.turn].fenced >= len(late)
    await assert_every_turn_exact(client, reader)
    await close(client, conversation_id)
    await reader.stop()
    assert [w.stop() for w in workers] == [0, 0]


async def test_the_assistant_killed_mid_answer_resumes_without_repeating_a_line(
    client: Client, llm_env: dict[str, str], task_queue: str, tmp_path: Path
) -> None:
    worker = llm_worker(llm_env, tmp_path / "llm.log")
    assistant = _assistant(llm_env, tmp_path)
    conversation = assistant.env["ASSISTANT_CONVERSATION_ID"]
    assistant.start()
    await logged(assistant, "answer")
    assistant.kill()
    assert not events(assistant.logs(), "answer complete"), "killed too late: not mid-answer"
    assistant.start()  # the same state file: it resumes
    assert await asyncio.to_thread(assistant.wait, 90) == 0, assistant.logs()[-3:]
    logs = assistant.logs()
    shown = "".join(line["text"] for line in events(logs, "answer"))
    (complete,) = events(logs, "answer complete")
    assert len(events(logs, "asking")) == 1, "the question was asked twice"
    assert events(logs, "resuming")
    recorded = await history.read(client, conversation)
    (answer,) = recorded.answers.values()
    assert shown == answer.text, "lines repeated or missing"
    assert complete["chars"] == len(answer.text) and complete["matches_result"] is True
    await close(client, conversation)
    assert worker.stop() == 0
