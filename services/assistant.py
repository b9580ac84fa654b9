"""assistant: asks the model one question and shows the answer as it is written; exits 0.

It starts (or joins) the conversation ASSISTANT_CONVERSATION_ID, asks
ASSISTANT_PROMPT and follows the answer on the conversation's stream with the
fencing ``Transcript``: a line per sentence or line of the answer as it grows,
a line when an attempt is discarded (the llm-worker died mid-answer, say), and
a closing line saying whether what it showed equals the workflow's result.

Killed at any instant it resumes: its state file (ASSISTANT_STATE_PATH, on a
volume) holds the question id, the stream offset to read from and how much of
the answer it has shown, replaced atomically after each batch. The question
is not asked twice (the id makes asking idempotent) and no line is shown
twice or skipped. Run it again when done and it asks again, as a new turn.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temporalio.client import Client

from services.shared import logs
from services.shared.connect import connect
from services.shared.conversation import (
    Completed,
    Discarded,
    Transcript,
    TurnFailed,
    ask,
    model_label,
)
from services.shared.models import CONVERSATION_TOPICS
from services.shared.runner import EXIT_BAD_INPUT, Fatal, run_service
from services.shared.settings import Settings
from services.shared.subscriptions import batched, follow

log = logs.get(__name__)

# Where a log line ends: after a sentence (with the line breaks after it) or a line.
_BREAK = re.compile(r"[.!?](?:\n+|(?=\s))|\n+")


@dataclass
class State:
    """What survives a kill: the question, where to read from, and what was shown."""

    conversation_id: str
    question_id: str
    prompt: str
    turn: int | None = None
    next_offset: int | None = None
    shown: int = 0  # characters of the current attempt's text already logged
    transcript: dict[str, Any] = field(default_factory=dict)
    done: bool = False


class StateFile:
    """The state, replaced atomically: write a temporary file, fsync it, rename it over."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.temporary = path.with_name(path.name + ".tmp")

    def load(self) -> State | None:
        try:
            return State(**json.loads(self.path.read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as err:
            raise Fatal(
                f"{self.path} is not an assistant state file ({err}); delete it to start over",
                code=EXIT_BAD_INPUT,
            ) from err

    def prepare(self, state: State) -> None:
        """The slow half (write, fsync); ``commit`` then makes it the state in one rename."""
        with self.temporary.open("w", encoding="utf-8") as out:
            json.dump(asdict(state), out)
            out.flush()
            os.fsync(out.fileno())

    def commit(self) -> None:
        self.temporary.replace(self.path)

    def save(self, state: State) -> None:
        self.prepare(state)
        self.commit()


async def main(settings: Settings) -> None:
    store = StateFile(settings.assistant_state_path)
    state = store.load()
    if (
        state is not None
        and not state.done
        and state.conversation_id == (settings.assistant_conversation_id)
    ):
        log.info(
            "resuming",
            question_id=state.question_id,
            turn=state.turn,
            from_offset=state.next_offset,
            shown_chars=state.shown,
        )
    else:
        state = State(
            settings.assistant_conversation_id, uuid.uuid4().hex, settings.assistant_prompt
        )
        store.save(state)  # before asking: a kill mid-ask asks again with the same id
    client = await connect(settings)
    if state.turn is None or state.next_offset is None:
        log.info(
            "asking",
            conversation_id=state.conversation_id,
            prompt=state.prompt,
            model=model_label(settings),
        )
        asked = await ask(
            client,
            conversation_id=state.conversation_id,
            task_queue=settings.llm_task_queue,
            prompt=state.prompt,
            question_id=state.question_id,
        )
        state.turn, state.next_offset = asked.turn, asked.start_offset
        store.save(state)
        log.info("asked", turn=asked.turn, start_offset=asked.start_offset)
    await _follow(client, settings, state, store)


async def _follow(client: Client, settings: Settings, state: State, store: StateFile) -> None:
    """Show the answer to ``state.turn`` until the turn completes or fails."""
    if state.turn is None or state.next_offset is None:
        raise RuntimeError("follow before ask")
    turn = state.turn
    transcript = Transcript.restore(state.transcript)
    async with (
        follow(
            client,
            settings,
            state.conversation_id,
            None,
            CONVERSATION_TOPICS,
            result_type=dict,
            from_offset=state.next_offset,
        ) as items,
        batched(items, limit=200) as batches,
    ):
        async for batch in batches:
            lines: list[dict[str, Any]] = []
            end: Completed | TurnFailed | None = None
            for item in batch:
                if item.offset < state.next_offset:
                    continue  # read before the kill
                change = transcript.apply(item.topic, item.data)
                if change is None or getattr(change, "turn", None) != turn:
                    continue
                if isinstance(change, Discarded):
                    lines.append(
                        {
                            "event": "attempt discarded",
                            "attempt": change.from_attempt,
                            "discarded_chars": change.chars,
                            "shown_chars": state.shown,
                            "started_over": change.attempt,
                            "why": change.why,
                        }
                    )
                    state.shown = 0
                elif isinstance(change, (Completed, TurnFailed)):
                    end = change
                    break
            text = transcript.turns[turn].text if turn in transcript.turns else ""
            attempt = transcript.turns[turn].attempt if turn in transcript.turns else 0
            state.shown = _lines(text, state.shown, lines, turn, attempt, final=end is not None)
            state.next_offset = batch[-1].offset + 1
            state.transcript = {
                "turns": [t for t in transcript.snapshot()["turns"] if t["turn"] == turn]
            }
            state.done = end is not None
            # Written before the lines are logged, renamed into place after: a
            # kill leaves either the old state (lines not logged) or the new.
            store.prepare(state)
            for line in lines:
                log.info(**line)
            store.commit()
            if isinstance(end, TurnFailed):
                raise Fatal(f"turn {turn} failed: {end.error}")
            if isinstance(end, Completed):
                _close(settings, end)
                return
    raise Fatal(f"the conversation {state.conversation_id} ended before turn {turn} did")


def _lines(
    text: str, shown: int, out: list[dict[str, Any]], turn: int, attempt: int, *, final: bool
) -> int:
    """Queue a line per finished sentence or line of ``text`` past ``shown``; the new mark."""
    breaks = [m.end() for m in _BREAK.finditer(text, shown)]
    if final and (not breaks or breaks[-1] < len(text)):
        breaks.append(len(text))
    for end in breaks:
        if end > shown:
            out.append(
                {"event": "answer", "turn": turn, "attempt": attempt, "text": text[shown:end]}
            )
            shown = end
    return shown


def _close(settings: Settings, done: Completed) -> None:
    if not done.matched:
        log.error(
            "shown text differs from the workflow's result",
            turn=done.turn,
            shown_chars=len(done.shown),
            result_chars=len(done.text),
            result=done.text,
        )
        raise Fatal(f"turn {done.turn}: the shown text differs from the workflow's result")
    log.info(
        "answer complete",
        turn=done.turn,
        attempt=done.attempt,
        matches_result=True,
        chars=len(done.text),
        model=model_label(settings),
    )


if __name__ == "__main__":
    run_service("assistant", main, one_shot=True)
