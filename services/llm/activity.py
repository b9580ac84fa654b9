"""``stream_completion``: one turn's answer, streamed into the conversation as it is written.

Chunks are coalesced: a ``delta`` goes out at most every ``publish_interval``
(one signal each), never a signal per token. Each delta says which attempt
wrote it and its place in that attempt (``seq``), so readers can fence a
superseded attempt's text. An attempt >= 2 first publishes ``retry``: the
text of the attempt before it is to be discarded. The activity heartbeats per
chunk, so a worker killed or paused mid-answer is given up on within the
heartbeat timeout. Its result, the whole text, is the turn's text.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from contextlib import suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from temporalio import activity
from temporalio.contrib.workflow_streams import TopicHandle, WorkflowStreamClient

from services.shared import logs
from services.shared.models import (
    CONVERSATION_CONFIG,
    DELTA_TOPIC,
    RETRY_TOPIC,
    STREAM_COMPLETION,
    Answer,
    CompletionInput,
    ConversationConfig,
    Delta,
    Retry,
)
from services.shared.settings import Settings

log = logs.get(__name__)
# Named in heartbeats, so that the next attempt can say which worker it replaced.
WORKER = f"{socket.gethostname()}/{os.getpid()}"


class Model(Protocol):
    name: str

    def stream(self, request: CompletionInput, attempt: int) -> AsyncIterator[str]: ...


@dataclass(frozen=True)
class Publishing:
    """How text reaches the stream: coalesce chunks for ``coalesce_s``, then flush at once.

    ``coalesce_s=0`` publishes a delta per chunk and leaves batching to the
    client's ``batch_interval`` (upstream's sample: 200 ms); the bench runs both.
    """

    coalesce_s: float
    batch_interval: timedelta
    force_flush: bool = True

    @classmethod
    def from_settings(cls, settings: Settings) -> Publishing:
        interval = settings.llm_publish_interval_seconds
        return cls(interval, timedelta(seconds=max(interval, 0.05)))


UPSTREAM = Publishing(0.0, timedelta(milliseconds=200), force_flush=False)


class Deltas:
    """Coalesces chunks into numbered deltas of one (turn, attempt).

    A chunk after a quiet spell goes out at once; the ones that follow within
    ``coalesce_s`` wait for the pump, which sends them together when that
    time is up, so no chunk waits longer than ``coalesce_s``.
    """

    def __init__(self, topic: TopicHandle[Delta], turn: int, attempt: int, how: Publishing):
        self.topic, self.turn, self.attempt, self.how = topic, turn, attempt, how
        self.seq = 0
        self.buffer: list[str] = []
        self.last = 0.0
        self.buffered = asyncio.Event()

    def add(self, chunk: str) -> None:
        self.buffer.append(chunk)
        if self.how.coalesce_s <= 0:
            self.flush()
        else:
            self.buffered.set()

    async def pump(self) -> None:
        """Send what is buffered once ``coalesce_s`` has passed since the last delta."""
        while True:
            await self.buffered.wait()
            await asyncio.sleep(max(0.0, self.last + self.how.coalesce_s - time.monotonic()))
            self.flush()

    def flush(self) -> None:
        """Publish what is buffered as one delta (the way out calls it too)."""
        self.buffered.clear()
        if not self.buffer:
            return
        delta = Delta(self.turn, self.attempt, self.seq, "".join(self.buffer))
        self.topic.publish(delta, force_flush=self.how.force_flush)
        self.seq, self.buffer, self.last = self.seq + 1, [], time.monotonic()


class Completions:
    """The llm-worker's activities, bound to its model and settings."""

    def __init__(self, settings: Settings, model: Model, publishing: Publishing) -> None:
        self.settings, self.model, self.publishing = settings, model, publishing

    @activity.defn(name=CONVERSATION_CONFIG)
    async def conversation_config(self) -> ConversationConfig:
        """The settings a conversation run needs (a local activity: recorded in history)."""
        s = self.settings
        return ConversationConfig(
            s.llm_heartbeat_timeout_seconds,
            s.llm_turns_per_run,
            s.llm_history_turns,
            s.llm_history_chars,
        )

    @activity.defn(name=STREAM_COMPLETION)
    async def stream_completion(self, request: CompletionInput) -> Answer:
        """Stream one answer into the parent conversation; return its whole text."""
        info = activity.info()
        attempt, turn = info.attempt, request.turn
        bound = log.bind(turn=turn, attempt=attempt, workflow_id=info.workflow_id)
        stream = WorkflowStreamClient.from_within_activity(
            batch_interval=self.publishing.batch_interval, max_batch_size=64
        )
        deltas = Deltas(stream.topic(DELTA_TOPIC, type=Delta), turn, attempt, self.publishing)
        text: list[str] = []
        began = time.monotonic()
        bound.info("answering", model=self.model.name)
        keep_alive = asyncio.create_task(_heartbeats(text, info.heartbeat_timeout))
        pump = asyncio.create_task(deltas.pump())
        try:
            async with stream:  # leaving it flushes what is buffered
                if attempt >= 2:
                    why = _why(attempt, info.heartbeat_details)
                    stream.topic(RETRY_TOPIC, type=Retry).publish(
                        Retry(turn, attempt, attempt - 1, why), force_flush=True
                    )
                    bound.info("retrying the answer", why=why)
                try:
                    async for chunk in self.model.stream(request, attempt):
                        text.append(chunk)
                        activity.heartbeat(sum(map(len, text)), WORKER)
                        deltas.add(chunk)
                finally:
                    # Even on the way out (cancelled, say) what was written goes
                    # out: it is this attempt's, and readers fence it by attempt.
                    deltas.flush()
        except asyncio.CancelledError:
            bound.warning("attempt cancelled", chars=sum(map(len, text)), deltas=deltas.seq)
            raise
        finally:
            for task in (keep_alive, pump):
                task.cancel()
                with suppress(asyncio.CancelledError):
                    await task
        answer = Answer("".join(text), attempt, self.model.name)
        bound.info(
            "answered",
            chars=len(answer.text),
            deltas=deltas.seq,
            seconds=round(time.monotonic() - began, 2),
        )
        return answer


async def _heartbeats(text: list[str], heartbeat_timeout: timedelta | None) -> None:
    """Heartbeat between chunks too: a model can think for a while before its first one."""
    every = (heartbeat_timeout.total_seconds() if heartbeat_timeout else 30.0) / 3
    while True:
        await asyncio.sleep(every)
        activity.heartbeat(sum(map(len, text)), WORKER)


def _why(attempt: int, details: object) -> str:
    """Why the previous attempt's text goes, naming its worker when a heartbeat did.

    The heartbeat's character count is not repeated here: the SDK throttles
    heartbeats, so the server's copy lags what the attempt had published.
    """
    before = attempt - 1
    if isinstance(details, (list, tuple)) and len(details) >= 2:
        return (
            f"attempt {before} on {details[1]} stopped before it finished: "
            "its worker was lost or paused past the heartbeat timeout, or the model failed"
        )
    return f"attempt {before} failed before its first heartbeat"
