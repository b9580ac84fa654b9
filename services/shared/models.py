"""Workflow inputs and stream event types, shared by workflows and services.

One dataclass per workflow input, so fields can be added compatibly. This
module is imported inside the workflow sandbox: keep it free of side effects.
"""

from __future__ import annotations

from dataclasses import dataclass

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
