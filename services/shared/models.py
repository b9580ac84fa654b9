"""Workflow inputs and stream event types, shared by workflows and services.

One dataclass per workflow input, so fields can be added compatibly. This
module is imported inside the workflow sandbox: keep it free of side effects.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from temporalio.contrib.workflow_streams import WorkflowStreamState

# -- Scenario 1: order with heterogeneous topics -----------------------------
STATUS_TOPIC = "status"
PROGRESS_TOPIC = "progress"


@dataclass
class OrderInput:
    order_id: str
    charge_seconds: float = 1.0


@dataclass
class ChargeInput:
    order_id: str
    seconds: float


@dataclass
class OrderStatus:
    state: str  # received | shipped | complete
    order_id: str


@dataclass
class Progress:
    message: str
    # Activity attempt that published it; a retried activity is a new
    # publisher, so its events reach the log again, marked with attempt > 1.
    attempt: int | None = None


# -- Scenario 2: multi-stage pipeline ----------------------------------------
STAGE_TOPIC = "stage"
WORK_STAGES = ("validating", "loading data", "transforming", "writing output", "verifying")
FINAL_STAGE = "complete"


@dataclass
class PipelineInput:
    step_seconds: float = 2.0
    steps_per_stage: int = 12


@dataclass
class StageEvent:
    stage: str
    step: int
    steps: int


# -- Scenario 3: passive hub fed by outside publishers -----------------------
NEWS_TOPIC = "news"


@dataclass
class HubInput:
    # Carried across continue-as-new; None on a fresh start.
    stream_state: WorkflowStreamState | None = None


@dataclass
class Headline:
    seq: int  # per source: 0, 1, 2, ... so a reader can tell a gap or a repeat
    text: str
    final: bool = False  # in-band end of this source's stream: readers stop here
    source: str = ""  # which publisher; several may feed one hub


# -- Scenario 4: truncating ticker -------------------------------------------
TICK_TOPIC = "ticks"


@dataclass
class TickerInput:
    ticks: int = 40
    interval_seconds: float = 1.0
    keep: int = 8
    next_tick: int = 0
    stream_state: WorkflowStreamState | None = None


@dataclass
class Tick:
    number: int
    final: bool = False


# -- Scenario 5: a model's answer, streamed token by token -------------------
# One ConversationWorkflow per conversation, on the llm-worker's task queue.
# The payloads below are contract A (docs/assistant.md): every reader renders
# them with services.shared.conversation.Transcript, or the page's twin of it.
TURN_TOPIC = "turn"  # the workflow accepted a question
DELTA_TOPIC = "delta"  # the activity streamed some text of one attempt
RETRY_TOPIC = "retry"  # an attempt >= 2 started: the one before it is discarded
COMPLETE_TOPIC = "complete"  # the workflow has the turn's text (the activity's result)
FAILED_TOPIC = "failed"  # the turn failed for good
CONVERSATION_TOPICS = [TURN_TOPIC, DELTA_TOPIC, RETRY_TOPIC, COMPLETE_TOPIC, FAILED_TOPIC]
CONVERSATION_WORKFLOW = "ConversationWorkflow"  # by name: clients need not import workflows
ASK_UPDATE = "ask"
CLOSE_SIGNAL = "close"
STREAM_COMPLETION = "stream_completion"  # the activity, by name (the workflow never imports openai)
CONVERSATION_CONFIG = "conversation_config"  # a local activity: the llm-worker's settings
MAX_PROMPT_CHARS = 4000
# ApplicationError types of model answers that retrying cannot change; the
# workflow's retry policy lists them as non-retryable.
MODEL_NOT_FOUND = "ModelNotFound"
MODEL_KEY_REFUSED = "ModelKeyRefused"
MODEL_BAD_REQUEST = "ModelBadRequest"
PERMANENT_MODEL_ERRORS = [MODEL_NOT_FOUND, MODEL_KEY_REFUSED, MODEL_BAD_REQUEST]


@dataclass
class Turn:
    turn: int  # 1, 2, 3 ... within the conversation, across its runs
    question_id: str
    prompt: str


@dataclass
class Delta:
    turn: int
    attempt: int  # the activity attempt that streamed it: the fence
    seq: int  # 0, 1, 2 ... within (turn, attempt)
    text: str  # one or more model chunks, coalesced


@dataclass
class Retry:
    turn: int
    attempt: int
    discarded_from: int  # attempt - 1: its text is thrown away
    why: str


@dataclass
class Complete:
    turn: int
    attempt: int
    text: str  # == the activity's result: the turn's text
    chars: int


@dataclass
class Failed:
    turn: int
    error: str  # the model server's own message
    retryable: bool = False


@dataclass
class Question:
    """The ``ask`` Update's argument; ``question_id`` makes asking idempotent."""

    question_id: str
    prompt: str


@dataclass
class Asked:
    """The ``ask`` Update's answer: the turn, and the offset of its ``turn`` event."""

    turn: int
    start_offset: int


@dataclass
class Pending:
    """A question accepted and not answered yet; carried across continue-as-new."""

    turn: int
    question_id: str
    prompt: str
    start_offset: int


@dataclass
class Exchange:
    """One answered turn, as the model sees it in the next turn's context."""

    prompt: str
    answer: str


@dataclass
class ConversationConfig:
    """The llm-worker's settings the workflow needs, read once per run."""

    heartbeat_timeout_seconds: float = 5.0
    turns_per_run: int = 10
    history_turns: int = 8
    history_chars: int = 8000


@dataclass
class ConversationInput:
    """Everything the next run needs, bounded: set on start, carried on continue-as-new."""

    next_turn: int = 1
    history: list[Exchange] = field(default_factory=list)  # the last few exchanges
    pending: list[Pending] = field(default_factory=list)
    asked: list[Pending] = field(default_factory=list)  # recent questions, for idempotency
    runs: int = 1  # this run's number in the conversation's chain
    stream_state: WorkflowStreamState | None = None


@dataclass
class CompletionInput:
    turn: int
    prompt: str
    history: list[Exchange] = field(default_factory=list)


@dataclass
class Answer:
    """``stream_completion``'s result: the turn's text, and the attempt that wrote it."""

    text: str
    attempt: int
    model: str
