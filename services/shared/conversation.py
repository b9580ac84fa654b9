"""Scenario 5 for every client: asking a question, and rendering the answer exactly.

``ask`` starts the conversation's workflow if need be and asks it a question
by an idempotent Update (the question id is the key: asking again returns the
same turn). ``Transcript`` is the one Python renderer of a conversation's
stream (the assistant, chaos-llm, the tests and the bench use it; the page
has its twin in JavaScript). Its rule is the fence of docs/assistant.md:

* per turn, only the highest attempt seen in ``delta``/``retry`` counts; its
  text is its deltas in ``seq`` order, a seq already applied is ignored;
* a higher attempt discards the text of the lower one (a model does not
  repeat itself, so attempt 2 is new text, not a continuation);
* a lower attempt, or anything for a turn already complete or failed, is
  fenced: ignored and counted. That is how a zombie attempt (a worker paused
  past its heartbeat timeout, then resumed) never reaches rendered text;
* ``complete`` carries the turn's text (the activity's result); the renderer
  checks its own text against it and reports a mismatch.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy

from services.shared.backoff import TEMPORAL_ERRORS, is_transient
from services.shared.models import (
    ASK_UPDATE,
    COMPLETE_TOPIC,
    CONVERSATION_WORKFLOW,
    DELTA_TOPIC,
    FAILED_TOPIC,
    MAX_PROMPT_CHARS,
    RETRY_TOPIC,
    TURN_TOPIC,
    Asked,
    ConversationInput,
    Question,
)
from services.shared.settings import Settings

ASK_ATTEMPTS = 5  # transient faults only; an answer (a refused prompt) is raised at once
# Only llm-workers run a conversation: one killed while it held a workflow task
# stalls the stream until this timeout hands the task to another (default 10 s).
TASK_TIMEOUT = timedelta(seconds=4)


def check_prompt(prompt: str) -> str:
    """The prompt, or ValueError saying what is accepted."""
    if not prompt.strip() or len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"prompt of {len(prompt)} characters is not accepted; "
            f"use 1 to {MAX_PROMPT_CHARS} characters, not all blank"
        )
    return prompt


async def ask(
    client: Client, *, conversation_id: str, task_queue: str, prompt: str, question_id: str
) -> Asked:
    """Ask ``prompt`` in conversation ``conversation_id``, starting it if it is not running.

    One update-with-start: the workflow is started (or the running one used)
    and its ``ask`` Update runs in the same call. The same ``question_id``
    always gets the same ``Asked``, so a caller that crashed mid-call simply
    asks again. Transient faults are retried a few times; others raise.
    """
    question = Question(question_id, check_prompt(prompt))
    for attempt in range(1, ASK_ATTEMPTS + 1):
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            CONVERSATION_WORKFLOW,
            ConversationInput(),
            id=conversation_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            task_timeout=TASK_TIMEOUT,
        )
        try:
            asked: Asked = await client.execute_update_with_start_workflow(
                ASK_UPDATE,
                question,
                start_workflow_operation=start,
                id=question_id,
                result_type=Asked,
            )
            return asked
        except TEMPORAL_ERRORS as err:
            if attempt == ASK_ATTEMPTS or not is_transient(err):
                raise
            await asyncio.sleep(0.25 * 2**attempt)
    raise AssertionError("unreachable")


def model_label(settings: Settings) -> str:
    """Which model answers, for people: the offline one, or LLM_MODEL at LLM_BASE_URL."""
    if settings.llm_base_url is None:
        return "offline (built in; set LLM_BASE_URL for a real model)"
    return f"{settings.llm_model} at {settings.llm_base_url}"


# -- rendering ----------------------------------------------------------------


@dataclass
class TurnText:
    """What a reader shows for one turn."""

    turn: int
    prompt: str = ""
    question_id: str = ""
    attempt: int = 0  # the attempt whose text is shown; 0 before any
    parts: dict[int, str] = field(default_factory=dict)  # seq -> text, of that attempt
    status: str = "streaming"  # streaming | complete | failed
    final: str | None = None  # complete.text
    error: str | None = None
    fenced: int = 0  # deltas/retries ignored: a superseded attempt, or after the end
    discarded_chars: int = 0  # text thrown away by later attempts, in all

    @property
    def text(self) -> str:
        if self.final is not None:
            return self.final
        return "".join(self.parts[seq] for seq in sorted(self.parts))


@dataclass(frozen=True)
class Grew:
    turn: int
    attempt: int
    text: str  # the turn's whole text now


@dataclass(frozen=True)
class Discarded:
    turn: int
    attempt: int  # the one that started over
    from_attempt: int
    chars: int
    why: str


@dataclass(frozen=True)
class Fenced:
    turn: int
    attempt: int
    topic: str
    why: str


@dataclass(frozen=True)
class Completed:
    turn: int
    attempt: int
    text: str
    matched: bool  # the rendered text was already exactly complete.text
    shown: str  # what was rendered before complete arrived


@dataclass(frozen=True)
class TurnFailed:
    turn: int
    error: str


@dataclass(frozen=True)
class Started:
    turn: int
    prompt: str


Change = Grew | Discarded | Fenced | Completed | TurnFailed | Started


class Transcript:
    """A conversation's turns as rendered from its stream, fenced by attempt."""

    def __init__(self) -> None:
        self.turns: dict[int, TurnText] = {}

    def _turn(self, number: int) -> TurnText:
        return self.turns.setdefault(number, TurnText(number))

    @property
    def fenced(self) -> int:
        return sum(t.fenced for t in self.turns.values())

    def apply(self, topic: str, data: Mapping[str, Any]) -> Change | None:
        """Apply one stream item (its topic and JSON object); say what changed, if anything."""
        turn = self._turn(int(data["turn"]))
        if topic == TURN_TOPIC:
            turn.prompt, turn.question_id = str(data["prompt"]), str(data["question_id"])
            return Started(turn.turn, turn.prompt)
        if topic in (DELTA_TOPIC, RETRY_TOPIC):
            return self._attempt_item(turn, topic, data)
        if topic == COMPLETE_TOPIC:
            if turn.status != "streaming":
                return None  # the same end again (a reader that resumed): nothing new
            shown = turn.text
            turn.status, turn.final = "complete", str(data["text"])
            turn.attempt = max(turn.attempt, int(data["attempt"]))
            return Completed(turn.turn, turn.attempt, turn.final, shown == turn.final, shown)
        if topic == FAILED_TOPIC:
            if turn.status != "streaming":
                return None
            turn.status, turn.error = "failed", str(data["error"])
            return TurnFailed(turn.turn, turn.error)
        return None

    def _attempt_item(self, turn: TurnText, topic: str, data: Mapping[str, Any]) -> Change | None:
        attempt = int(data["attempt"])
        if turn.status != "streaming":
            turn.fenced += 1
            return Fenced(turn.turn, attempt, topic, f"turn {turn.turn} is already {turn.status}")
        if attempt < turn.attempt:
            turn.fenced += 1
            return Fenced(
                turn.turn, attempt, topic, f"attempt {attempt} was superseded by {turn.attempt}"
            )
        change: Change | None = None
        if attempt > turn.attempt:
            if turn.attempt:
                chars = len(turn.text)
                why = str(data.get("why") or f"attempt {attempt} started")
                change = Discarded(turn.turn, attempt, turn.attempt, chars, why)
                turn.discarded_chars += chars
            turn.attempt, turn.parts = attempt, {}
        if topic == DELTA_TOPIC:
            seq = int(data["seq"])
            if seq in turn.parts:
                return change  # applied before (a reader that resumed): ignored
            turn.parts[seq] = str(data["text"])
            if change is None:
                change = Grew(turn.turn, attempt, turn.text)
        return change

    def snapshot(self) -> dict[str, Any]:
        """A JSON-able copy, so that a reader can resume after a restart."""
        return {"turns": [asdict(t) for t in self.turns.values()]}

    @classmethod
    def restore(cls, snapshot: Mapping[str, Any]) -> Transcript:
        """The transcript ``snapshot`` was taken of."""
        transcript = cls()
        for raw in snapshot.get("turns", []):
            parts = {int(seq): text for seq, text in raw.get("parts", {}).items()}
            turn = TurnText(**{**raw, "parts": parts})
            transcript.turns[turn.turn] = turn
        return transcript
