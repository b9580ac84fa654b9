"""What scenario 5's tests share: llm-worker processes, and a separate reader of the stream.

The reader is the outside observer: it subscribes to the conversation in the
test's own process, renders with ``Transcript`` exactly as every consumer
does, and keeps every raw item, so a test can say both what was shown and
what reached the log (a zombie's late deltas, say).
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client

from services.llm import history
from services.shared.backoff import Backoff
from services.shared.conversation import Change, Transcript, TurnText, ask
from services.shared.models import CLOSE_SIGNAL, CONVERSATION_TOPICS, Asked
from services.shared.subscriptions import following
from testkit.jsonlogs import events
from testkit.waiting import eventually
from tests.processes import Service


def llm_worker(env: dict[str, str], log: Path, **extra: str) -> Service:
    """An llm-worker process on this test's queue (offline model unless told otherwise)."""
    health = log.with_suffix(".healthy")
    worker = Service("llm_worker", {**env, "HEALTH_FILE": str(health), **extra}, log)
    worker.start()
    return worker


async def logged(service: Service, event: str, within: float = 60, **fields: Any) -> dict[str, Any]:
    """The first line of ``service`` logging ``event`` with ``fields`` (waits without blocking)."""

    def found() -> dict[str, Any] | None:
        for line in events(service.logs(), event):
            if all(line.get(k) == v for k, v in fields.items()):
                return line
        return None

    line: dict[str, Any] = await eventually(found, what=f"{service.module}: {event}", within=within)
    return line


@dataclass
class Item:
    offset: int
    topic: str
    data: dict[str, Any]


@dataclass
class Reader:
    """A separate reader of one conversation: everything it received and what it rendered."""

    client: Client
    conversation_id: str
    transcript: Transcript = field(default_factory=Transcript)
    items: list[Item] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        async with following(
            self.client,
            self.conversation_id,
            None,
            CONVERSATION_TOPICS,
            result_type=dict,
            backoff=Backoff("test reader", 30),
            poll_cooldown=timedelta(milliseconds=20),
        ) as items:
            async for item in items:
                self.items.append(Item(item.offset, item.topic, item.data))
                change = self.transcript.apply(item.topic, item.data)
                if change is not None:
                    self.changes.append(change)

    def start(self) -> None:
        self.task = asyncio.create_task(self._read())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with suppress(asyncio.CancelledError):
                await self.task

    def seen(self, topic: str, **fields: Any) -> list[Item]:
        return [
            i
            for i in self.items
            if i.topic == topic and all(i.data.get(k) == v for k, v in fields.items())
        ]

    async def wait_for(self, topic: str, within: float = 60, **fields: Any) -> Item:
        found: list[Item] = await eventually(
            lambda: self.seen(topic, **fields), what=f"{topic} {fields}", within=within
        )
        return found[0]

    async def ended(self, turn: int, within: float = 90) -> TurnText:
        """The turn once it is complete or failed."""

        def done() -> TurnText | None:
            shown = self.transcript.turns.get(turn)
            return shown if shown is not None and shown.status != "streaming" else None

        result: TurnText = await eventually(done, what=f"turn {turn} to end", within=within)
        return result


async def converse(client: Client, task_queue: str, prompt: str) -> tuple[str, Reader, Asked]:
    """A new conversation with its reader started first, and one question asked."""
    conversation_id = f"talk-{uuid.uuid4().hex[:8]}"
    reader = Reader(client, conversation_id)
    asked = await ask(
        client,
        conversation_id=conversation_id,
        task_queue=task_queue,
        prompt=prompt,
        question_id=uuid.uuid4().hex,
    )
    reader.start()
    return conversation_id, reader, asked


async def assert_every_turn_exact(client: Client, reader: Reader) -> history.Conversation:
    """Each turn the reader rendered equals the activity's result in the workflow's history."""
    recorded = await history.read(client, reader.conversation_id)
    assert recorded.answers, "no turn was answered"
    for turn, answer in recorded.answers.items():
        shown = reader.transcript.turns[turn]
        assert shown.status == "complete", f"turn {turn}: {shown.status}"
        assert shown.text == answer.text, f"turn {turn}: the reader shows other text"
        done = [c for c in reader.changes if getattr(c, "turn", None) == turn]
        assert any(getattr(c, "matched", False) for c in done), f"turn {turn}: not matched"
    return recorded


async def close(client: Client, conversation_id: str) -> None:
    """End the conversation, so that it does not outlive its test on the session's server."""
    await client.get_workflow_handle(conversation_id).signal(CLOSE_SIGNAL)
