"""The dashboard's buttons: a publish that outlives its request, and the assistant's question.

The publish runs as a supervised background job: the POST answers 202 at
once, a second one while it runs gets 409, and the final headline is always
published. The assistant's POST asks the dashboard's conversation (an
llm-worker process with the built-in offline model answers it).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.client import Client

from services.shared.models import MAX_PROMPT_CHARS, NEWS_TOPIC
from services.shared.settings import Settings
from services.workflows import HubWorkflow
from testkit.sse import SseEvent
from tests.llm_support import llm_worker
from tests.test_web_support import connection, running_web, viewer

JSON = {"Content-Type": "application/json"}
EVENTS = 20_000  # several seconds of publishing: far longer than the POST takes


@pytest.mark.usefixtures("worker")
async def test_a_publish_runs_in_the_background_one_at_a_time_to_its_final_headline(
    client: Client, settings: Settings
) -> None:
    hub_id = f"hub-job-{settings.task_queue}"
    async with running_web(
        client, settings, web_hub_workflow_id=hub_id, publisher_events=EVENTS
    ) as web:
        started = await web.http.post("/api/hub/publish", json={})
        again = await web.http.post("/api/hub/publish", json={})
        async with viewer(web, hub_id, topics=NEWS_TOPIC) as events:
            final = await _final_headline(events)
        status = (await web.http.get("/api/status")).json()
    assert started.status_code == 202, started.text
    assert started.json() == {
        "workflow_id": hub_id,
        "source": started.json()["source"],
        "events": EVENTS,
    }
    assert again.status_code == 409
    assert "already running" in again.json()["detail"]
    assert final.json()["seq"] == EVENTS
    assert final.json()["source"] == started.json()["source"]
    assert status["viewers"] == 0
    await client.get_workflow_handle(hub_id).signal(HubWorkflow.close)


async def test_the_assistant_is_asked_and_its_answer_streams(
    client: Client, env: dict[str, str], task_queue: str, settings: Settings, tmp_path: Path
) -> None:
    worker = llm_worker(
        {**env, "LLM_TASK_QUEUE": task_queue},
        tmp_path / "llm.log",
        LLM_OFFLINE_TOKENS_PER_SECOND="400",
    )
    conversation = f"assistant-web-{uuid.uuid4().hex[:6]}"
    try:
        async with running_web(
            client, settings, llm_task_queue=task_queue, web_assistant_workflow_id=conversation
        ) as web:
            config = (await web.http.get("/api/config")).json()["assistant"]
            asked = await web.http.post("/api/assistant", json={"prompt": "What is a stream?"})
            assert asked.status_code == 201, asked.text
            async with connection(web, conversation) as events:
                seen = [e async for e in _until_complete(events)]
    finally:
        worker.kill()
    assert config["workflow_id"] == conversation
    assert config["topics"] == ["turn", "delta", "retry", "complete", "failed"]
    assert config["model"].startswith("offline")
    answer = asked.json()
    assert set(answer) == {"workflow_id", "turn", "question_id"}
    assert answer["workflow_id"] == conversation
    items = [e.json() for e in seen if e.event == "item"]
    turn = next(i["data"] for i in items if i["topic"] == "turn")
    assert (turn["turn"], turn["question_id"]) == (answer["turn"], answer["question_id"])
    assert turn["prompt"] == "What is a stream?"
    deltas = "".join(i["data"]["text"] for i in items if i["topic"] == "delta")
    complete = next(i["data"] for i in items if i["topic"] == "complete")
    assert complete["text"] == deltas and complete["chars"] == len(deltas) > 0


async def test_a_bad_question_is_refused_saying_what_is_accepted(
    client: Client, settings: Settings
) -> None:
    async with running_web(client, settings) as web:
        answers = {
            name: await web.http.post("/api/assistant", json=body)
            for name, body in {
                "empty": {"prompt": ""},
                "blank": {"prompt": "   "},
                "long": {"prompt": "x" * (MAX_PROMPT_CHARS + 1)},
                "number": {"prompt": 42},
                "extra": {"prompt": "hi", "model": "gpt"},
                "missing": {},
            }.items()
        }
        cross_site = await web.http.post(
            "/api/assistant", json={"prompt": "hi"}, headers={"Sec-Fetch-Site": "cross-site"}
        )
    assert {name: a.status_code for name, a in answers.items()} == dict.fromkeys(answers, 400)
    assert f"send 1 to {MAX_PROMPT_CHARS} characters" in answers["long"].json()["detail"]
    assert "send a string" in answers["number"].json()["detail"]
    assert '{"prompt": "<your question>"}' in answers["extra"].json()["detail"]
    assert cross_site.status_code == 403


async def _final_headline(events: AsyncIterator[SseEvent]) -> SseEvent:
    last = None
    async for event in events:
        if event.event == NEWS_TOPIC and event.json()["final"]:
            return event
        last = event
    raise AssertionError(f"the stream closed before the final headline, after {last}")


async def _until_complete(events: AsyncIterator[SseEvent]) -> AsyncIterator[SseEvent]:
    async for event in events:
        yield event
        if event.event == "item" and event.json()["topic"] in ("complete", "failed"):
            return
