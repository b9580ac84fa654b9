"""Scenario 5's figures: a model's tokens from the model to a reader, and what an answer costs.

Two designs answer the same questions in the same run, on one dev server,
each with its own in-process llm-worker and one reader:

* this project: chunks coalesced into one ``delta`` per ``LLM_PUBLISH_INTERVAL_SECONDS``
  (100 ms), each sent at once (``force_flush``); the reader polls with the
  project's ``POLL_COOLDOWN_SECONDS`` (20 ms);
* upstream's sample: a ``delta`` per chunk, batched by the client's
  ``batch_interval`` of 200 ms; the reader's ``poll_cooldown`` is 100 ms.

The model is the offline one at 40 tokens/s. A token's latency runs from the
moment the model yielded it to the moment the reader had the delta holding it
(same process, same clock). Time to first token runs from the ``ask`` call to
the first delta at the reader. The cost is counted from the workflow history:
signals, Updates and events per answer. ``python -m bench.llm`` runs this alone.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client

from services.llm import history
from services.llm.activity import UPSTREAM, Publishing
from services.llm.offline import OfflineModel
from services.llm.worker import build_llm_worker
from services.shared import logs
from services.shared.conversation import Transcript, ask
from services.shared.models import CLOSE_SIGNAL, CONVERSATION_TOPICS, DELTA_TOPIC, CompletionInput
from services.shared.settings import Settings
from services.shared.subscriptions import follow
from testkit.devserver import dev_server
from testkit.waiting import eventually

ANSWERS = 5
TOKENS_PER_SECOND = 40.0


@dataclass(frozen=True)
class Design:
    name: str
    publishing: Publishing
    poll_cooldown_s: float


def designs() -> list[Design]:
    project = Settings()
    return [
        Design("this project", Publishing.from_settings(project), project.poll_cooldown_seconds),
        Design("upstream's settings", UPSTREAM, 0.1),
    ]


class TimedModel:
    """The offline model, noting when each chunk was yielded (the token's publish moment)."""

    name = "offline"

    def __init__(self) -> None:
        self.inner = OfflineModel(TOKENS_PER_SECOND)
        self.chunks: dict[int, list[tuple[int, float]]] = {}  # turn -> (end position, time)

    async def stream(self, request: CompletionInput, attempt: int) -> AsyncIterator[str]:
        position, noted = 0, self.chunks.setdefault(request.turn, [])
        async for chunk in self.inner.stream(request, attempt):
            position += len(chunk)
            noted.append((position, time.perf_counter()))
            yield chunk


@dataclass
class Figures:
    design: str
    answers: int
    tokens: int
    p50_ms: float
    p99_ms: float
    first_token_ms: float
    tokens_per_s: float
    signals_per_answer: float
    updates_per_answer: float
    events_per_answer: float


@dataclass
class _Reading:
    received: dict[int, list[tuple[int, float]]] = field(default_factory=dict)  # turn -> (len, t)
    transcript: Transcript = field(default_factory=Transcript)


async def _read(client: Client, settings: Settings, conversation: str, into: _Reading) -> None:
    async with follow(
        client, settings, conversation, None, CONVERSATION_TOPICS, result_type=dict
    ) as items:
        async for item in items:
            into.transcript.apply(item.topic, item.data)
            if item.topic == DELTA_TOPIC:
                turn = int(item.data["turn"])
                length = len(into.transcript.turns[turn].text)
                into.received.setdefault(turn, []).append((length, time.perf_counter()))


async def run_design(client: Client, design: Design) -> Figures:
    """``ANSWERS`` answers, one after another, through ``design``; its figures."""
    queue = f"bench-llm-{uuid.uuid4().hex[:6]}"
    settings = dataclasses.replace(
        Settings(), llm_task_queue=queue, poll_cooldown_seconds=design.poll_cooldown_s
    )
    model = TimedModel()
    conversation = f"bench-llm-{uuid.uuid4().hex[:6]}"
    reading = _Reading()
    asked_at: dict[int, float] = {}
    async with build_llm_worker(client, settings, model=model, publishing=design.publishing):
        reader: asyncio.Task[None] | None = None
        for n in range(ANSWERS):
            began = time.perf_counter()
            asked = await ask(
                client,
                conversation_id=conversation,
                task_queue=queue,
                prompt=f"benchmark question {n}",
                question_id=uuid.uuid4().hex,
            )
            asked_at[asked.turn] = began
            if reader is None:  # the conversation exists now
                reader = asyncio.create_task(_read(client, settings, conversation, reading))
            await _answered(reading.transcript, asked.turn)
        if reader is not None:
            reader.cancel()
        await client.get_workflow_handle(conversation).signal(CLOSE_SIGNAL)
    recorded = await history.read(client, conversation)
    return _figures(design, model, reading, asked_at, recorded)


async def _answered(transcript: Transcript, turn: int) -> None:
    def done() -> bool:
        shown = transcript.turns.get(turn)
        return shown is not None and shown.status != "streaming"

    await eventually(done, what=f"the answer to turn {turn}")


def _figures(
    design: Design,
    model: TimedModel,
    reading: _Reading,
    asked_at: dict[int, float],
    recorded: history.Conversation,
) -> Figures:
    latencies: list[float] = []
    first: list[float] = []
    rates: list[float] = []
    for turn, chunks in model.chunks.items():
        got = reading.received.get(turn, [])
        for end, made in chunks:
            arrived = next(t for length, t in got if length >= end)
            latencies.append((arrived - made) * 1000)
        first.append((got[0][1] - asked_at[turn]) * 1000)
        rates.append(len(chunks) / max(got[-1][1] - got[0][1], 1e-6))
    latencies.sort()
    answers = len(recorded.answers)
    return Figures(
        design=design.name,
        answers=answers,
        tokens=len(latencies),
        p50_ms=statistics.median(latencies),
        p99_ms=latencies[max(0, round(len(latencies) * 0.99) - 1)],
        first_token_ms=statistics.median(first),
        tokens_per_s=statistics.median(rates),
        signals_per_answer=recorded.signals / answers,
        updates_per_answer=recorded.updates / answers,
        events_per_answer=recorded.events / answers,
    )


async def measure() -> list[Figures]:
    """Both designs, on one dev server of our own."""
    async with dev_server() as server:
        return [await run_design(server.client, design) for design in designs()]


def rows(figures: list[Figures]) -> list[str]:
    """The table for the bench's report."""
    out = [
        f"{'design':<21} {'p50 ms':>7} {'p99 ms':>7} {'first token ms':>14} {'tokens/s':>8} "
        f"{'signals':>7} {'updates':>7} {'events':>6}  (per answer; {ANSWERS} answers each)"
    ]
    for f in figures:
        out.append(
            f"{f.design:<21} {f.p50_ms:>7.0f} {f.p99_ms:>7.0f} {f.first_token_ms:>14.0f} "
            f"{f.tokens_per_s:>8.1f} {f.signals_per_answer:>7.1f} {f.updates_per_answer:>7.1f} "
            f"{f.events_per_answer:>6.0f}"
        )
    return out


def as_json(figures: list[Figures]) -> list[dict[str, Any]]:
    return [dataclasses.asdict(f) for f in figures]


if __name__ == "__main__":
    logs.configure("bench", level="warning")
    for row in rows(asyncio.run(measure())):
        print(f"bench: {row}", flush=True)
