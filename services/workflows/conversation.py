"""Scenario 5: one conversation with a model, as long as the user keeps talking.

Each question is a turn: the ``ask`` Update accepts it (idempotently, by
question id), publishes ``turn`` and queues it; the run answers the queue in
order, one ``stream_completion`` activity per turn. The activity streams the
answer's text on ``delta`` (and ``retry`` when it runs again); its result is
the turn's text, which the workflow publishes on ``complete`` (or the model's
refusal on ``failed``).

A conversation outlives any one run: every reader's poll is an Update (2,000
per run at most) and every delta batch a signal, so between turns the run
continues as new, after ``LLM_TURNS_PER_RUN`` turns or sooner when the server
suggests it. It carries what the next turn needs, bounded: the last few
exchanges, the questions still waiting, the recent question ids (so a repeated
``ask`` still gets its first answer), and the stream's log truncated to the
last few turns. This workflow runs only on the llm-worker (its own task queue).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from typing import NoReturn

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.contrib.workflow_streams import WorkflowStream, WorkflowStreamState
from temporalio.exceptions import ActivityError

from services.shared.models import (
    ASK_UPDATE,
    CLOSE_SIGNAL,
    COMPLETE_TOPIC,
    CONVERSATION_CONFIG,
    CONVERSATION_WORKFLOW,
    FAILED_TOPIC,
    MAX_PROMPT_CHARS,
    PERMANENT_MODEL_ERRORS,
    STREAM_COMPLETION,
    TURN_TOPIC,
    Answer,
    Asked,
    Complete,
    CompletionInput,
    ConversationConfig,
    ConversationInput,
    Exchange,
    Failed,
    Pending,
    Question,
    Turn,
)
from services.workflows.hub import CARRY_BUDGET_BYTES, bounded

OFFSET_QUERY = "__temporal_workflow_stream_offset"  # WorkflowStream's own: the log's end
ASKED_KEEP = 100  # recent question ids carried for idempotency
RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=20),
    maximum_attempts=6,
    non_retryable_error_types=PERMANENT_MODEL_ERRORS,
)


@dataclass
class _Run:
    """This run's counters; a new run starts them again."""

    config: ConversationConfig
    turns: int = 0


@workflow.defn(name=CONVERSATION_WORKFLOW)
class ConversationWorkflow:
    """Hosts the conversation's stream and answers its questions one turn at a time."""

    @workflow.init
    def __init__(self, conversation: ConversationInput) -> None:
        self.stream = WorkflowStream(prior_state=conversation.stream_state)
        self.turn_events = self.stream.topic(TURN_TOPIC, type=Turn)
        self.completes = self.stream.topic(COMPLETE_TOPIC, type=Complete)
        self.failures = self.stream.topic(FAILED_TOPIC, type=Failed)
        self.next_turn = conversation.next_turn
        self.history = list(conversation.history)
        self.pending = list(conversation.pending)
        self.asked = {p.question_id: p for p in conversation.asked}
        self.runs = conversation.runs
        self.closed = False

    @workflow.update(name=ASK_UPDATE)
    async def ask(self, question: Question) -> Asked:
        """Queue ``question``; the same question id always gets the same turn."""
        # A publish signal delivered in this activation is applied first (see
        # WorkflowStream's note), so the offset below is the log's true end.
        await asyncio.sleep(0)
        known = self.asked.get(question.question_id)
        if known is not None:
            return Asked(known.turn, known.start_offset)
        offset: int = workflow.get_query_handler(OFFSET_QUERY)()  # type: ignore[misc]
        pending = Pending(self.next_turn, question.question_id, question.prompt, offset)
        self.next_turn += 1
        self.turn_events.publish(Turn(pending.turn, pending.question_id, pending.prompt))
        self.pending.append(pending)
        self.asked[pending.question_id] = pending
        return Asked(pending.turn, offset)

    @ask.validator
    def _check(self, question: Question) -> None:
        # Refused before it is written to history; the caller sees the reason.
        if not question.question_id:
            raise ValueError("question_id is empty; use a unique id per question")
        if not question.prompt.strip() or len(question.prompt) > MAX_PROMPT_CHARS:
            raise ValueError(f"prompt must be 1 to {MAX_PROMPT_CHARS} characters, not all blank")

    @workflow.signal(name=CLOSE_SIGNAL)
    def close(self) -> None:
        """End the conversation; questions still waiting are failed."""
        self.closed = True

    @workflow.run
    async def run(self, conversation: ConversationInput) -> None:
        config: ConversationConfig = await workflow.execute_local_activity(
            CONVERSATION_CONFIG,
            result_type=ConversationConfig,
            start_to_close_timeout=timedelta(seconds=10),
        )
        run = _Run(config)
        while True:
            await workflow.wait_condition(lambda: bool(self.pending) or self.closed or _suggested())
            if self.closed:
                break
            if self.pending:
                await self._answer(self.pending[0], config)
                self.pending.pop(0)
                run.turns += 1
            if run.turns >= config.turns_per_run or _suggested():
                await self._continue_as_new(run)
        for pending in self.pending:
            self.failures.publish(Failed(pending.turn, "the conversation was closed first"))
        # Pitfall 5: let polls in flight collect the last events before the run closes.
        self.stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)

    async def _answer(self, pending: Pending, config: ConversationConfig) -> None:
        request = CompletionInput(pending.turn, pending.prompt, list(self.history))
        try:
            answer: Answer = await workflow.execute_activity(
                STREAM_COMPLETION,
                request,
                result_type=Answer,
                start_to_close_timeout=timedelta(minutes=10),
                # A worker killed or paused mid-answer is given up on this fast,
                # and the next attempt runs on whichever llm-worker is up.
                heartbeat_timeout=timedelta(seconds=config.heartbeat_timeout_seconds),
                retry_policy=RETRY,
            )
        except ActivityError as err:
            cause = err.cause or err
            error = " ".join(str(cause).split()) or type(cause).__name__
            self.failures.publish(Failed(pending.turn, error))
            workflow.logger.warning("turn failed", extra={"turn": pending.turn, "error": error})
            return
        self.completes.publish(
            Complete(pending.turn, answer.attempt, answer.text, len(answer.text))
        )
        self.history = bounded_history(
            [*self.history, Exchange(pending.prompt, answer.text)], config
        )

    async def _continue_as_new(self, run: _Run) -> NoReturn:
        """Hand the conversation to a fresh run, its log cut to the last few turns."""
        self.stream.truncate(self._keep_from(run.config.history_turns))
        info = workflow.info()
        workflow.logger.info(
            "continuing as new",
            extra={
                "turns_this_run": run.turns,
                "waiting": len(self.pending),
                "history_length": info.get_current_history_length(),
                "suggested": info.is_continue_as_new_suggested(),
            },
        )

        def next_run(state: WorkflowStreamState) -> list[ConversationInput]:
            # Asks that arrived while pollers drained are in self.pending by now.
            recent = list(self.asked.values())[-ASKED_KEEP:]
            return [
                ConversationInput(
                    next_turn=self.next_turn,
                    history=self.history,
                    pending=self.pending,
                    asked=recent,
                    runs=self.runs + 1,
                    stream_state=bounded(state, CARRY_BUDGET_BYTES),
                )
            ]

        await self.stream.continue_as_new(next_run)

    def _keep_from(self, turns: int) -> int:
        """The offset of the oldest turn to keep: the last ``turns`` answered, and all waiting."""
        end: int = workflow.get_query_handler(OFFSET_QUERY)()  # type: ignore[misc]
        answered = self.next_turn - 1 - len(self.pending)
        kept = [
            p.start_offset
            for p in self.asked.values()
            if p.turn > answered - max(turns, 1) or p in self.pending
        ]
        return min([end, *kept])


def _suggested() -> bool:
    return workflow.info().is_continue_as_new_suggested()


def bounded_history(history: list[Exchange], config: ConversationConfig) -> list[Exchange]:
    """The newest exchanges, at most ``history_turns`` of them and ``history_chars`` in all."""
    kept: list[Exchange] = []
    chars = 0
    for exchange in reversed(history[-config.history_turns :] if config.history_turns else []):
        chars += len(exchange.prompt) + len(exchange.answer)
        if chars > config.history_chars:
            break
        kept.append(exchange)
    return kept[::-1]
