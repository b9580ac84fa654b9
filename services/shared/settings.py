"""Configuration: read once from the environment and validated at start.

Every knob of every service lives here so that the README's configuration
table has one source. A bad value raises :class:`ConfigError`, whose message
names the variable, what it holds and what is accepted; the service runner
turns that into exit code 2 before anything connects or writes.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path

LOG_FORMATS = ("console", "json")
LOG_LEVELS = ("debug", "info", "warning", "error")
# What a long-running service does when it refuses bad input (exit code 2):
# exit at once, or hold the refusal until it is stopped (see runner).
ON_REFUSAL = ("exit", "wait")
# host:port, host being a name, an IPv4 address or a bracketed IPv6 address.
_ADDRESS = re.compile(r"^(?P<host>[A-Za-z0-9.\-]+|\[[0-9A-Fa-f:.]+\]):(?P<port>\d{1,5})$")


class ConfigError(ValueError):
    """A variable is malformed; the message says which, and what is accepted."""


@dataclass(frozen=True)
class Settings:
    """Everything the services read from the environment, already validated."""

    log_format: str = "console"
    log_level: str = "info"
    task_queue: str = "workflow-streams"
    connect_attempts: int = 8
    connect_max_backoff_seconds: float = 5.0
    reconnect_attempts: int = 30
    poll_cooldown_seconds: float = 0.02
    on_refusal: str = "exit"
    health_file: Path = Path("/tmp/healthy")  # noqa: S108 (the container's own /tmp)
    order_id: str | None = None
    charge_seconds: float = 1.0
    pipeline_workflow_id: str = "pipeline"
    pipeline_step_seconds: float = 2.0
    pipeline_steps_per_stage: int = 12
    pipeline_runs: int = 0
    ledger_path: Path = Path("/data/events.jsonl")
    ledger_keep_runs: int = 20
    hub_workflow_id: str | None = None
    publisher_events: int = 8
    publisher_batch_size: int = 500
    ticker_workflow_id: str = "ticker"
    ticker_ticks: int = 40
    ticker_interval_seconds: float = 1.0
    ticker_keep: int = 8
    ticker_slow_delay_seconds: float = 3.0
    # workers: runs kept in memory between tasks (the SDK's default is 1000)
    worker_max_cached_workflows: int = 100
    # web: the dashboard's SSE fan-out (services/web)
    web_max_viewers: int = 100
    web_max_streams: int = 20
    web_viewer_buffer: int = 500
    web_replay_events: int = 2000
    web_heartbeat_seconds: float = 15.0
    web_linger_seconds: float = 30.0
    web_hub_workflow_id: str = "hub-web"
    web_replay_bytes: int = 16_000_000
    web_allowed_hosts: tuple[str, ...] = ("localhost", "127.0.0.1", "[::1]")
    web_client_max_viewers: int = 32
    web_client_max_streams: int = 16
    web_assistant_workflow_id: str = "assistant-web"
    web_listen_port: int = 8000  # inside its container; compose publishes it as WEB_PORT
    # scenario 5: the llm-worker's model, and the assistant (docs/assistant.md)
    llm_base_url: str | None = None  # unset: the built-in offline model answers
    llm_api_key: str | None = field(default=None, repr=False)  # never printed
    llm_model: str = "gpt-4o-mini"
    llm_task_queue: str = "llm"
    llm_heartbeat_timeout_seconds: float = 5.0
    llm_turns_per_run: int = 10
    llm_history_turns: int = 8
    llm_history_chars: int = 8000
    llm_publish_interval_seconds: float = 0.1
    llm_offline_tokens_per_second: float = 40.0
    assistant_prompt: str = (
        "How do Workflow Streams keep a streamed answer exact when a worker dies?"
    )
    assistant_conversation_id: str = "assistant"
    assistant_state_path: Path = Path("/data/assistant.json")

    @property
    def poll_cooldown(self) -> timedelta:
        """How long a stream reader that has caught up waits before its next poll."""
        return timedelta(seconds=self.poll_cooldown_seconds)

    @classmethod
    def variables(cls) -> list[str]:
        """The environment variable behind each setting, in declaration order."""
        return [f.name.upper() for f in fields(cls)]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError on the first bad one."""
        e = _Env(os.environ if env is None else env)
        _check_temporal_address(e)
        d = cls()
        return cls(
            log_format=e.choice("LOG_FORMAT", d.log_format, LOG_FORMATS),
            log_level=e.choice("LOG_LEVEL", d.log_level, LOG_LEVELS),
            task_queue=e.text("TASK_QUEUE", d.task_queue),
            connect_attempts=e.integer("CONNECT_ATTEMPTS", d.connect_attempts, minimum=1),
            connect_max_backoff_seconds=e.number(
                "CONNECT_MAX_BACKOFF_SECONDS", d.connect_max_backoff_seconds
            ),
            reconnect_attempts=e.integer("RECONNECT_ATTEMPTS", d.reconnect_attempts, minimum=1),
            poll_cooldown_seconds=e.number(
                "POLL_COOLDOWN_SECONDS", d.poll_cooldown_seconds, above_0=_BUSY_LOOP
            ),
            on_refusal=e.choice("ON_REFUSAL", d.on_refusal, ON_REFUSAL),
            health_file=Path(e.text("HEALTH_FILE", str(d.health_file))),
            order_id=e.optional_text("ORDER_ID"),
            charge_seconds=e.number("CHARGE_SECONDS", d.charge_seconds),
            pipeline_workflow_id=e.text("PIPELINE_WORKFLOW_ID", d.pipeline_workflow_id),
            pipeline_step_seconds=e.number("PIPELINE_STEP_SECONDS", d.pipeline_step_seconds),
            pipeline_steps_per_stage=e.integer(
                "PIPELINE_STEPS_PER_STAGE", d.pipeline_steps_per_stage, minimum=1
            ),
            pipeline_runs=e.integer("PIPELINE_RUNS", d.pipeline_runs, minimum=0),
            ledger_path=Path(e.text("LEDGER_PATH", str(d.ledger_path))),
            ledger_keep_runs=e.integer("LEDGER_KEEP_RUNS", d.ledger_keep_runs, minimum=1),
            hub_workflow_id=e.optional_text("HUB_WORKFLOW_ID"),
            publisher_events=e.integer("PUBLISHER_EVENTS", d.publisher_events, minimum=1),
            publisher_batch_size=e.integer(
                "PUBLISHER_BATCH_SIZE", d.publisher_batch_size, minimum=1, maximum=2000
            ),
            ticker_workflow_id=e.text("TICKER_WORKFLOW_ID", d.ticker_workflow_id),
            ticker_ticks=e.integer("TICKER_TICKS", d.ticker_ticks, minimum=1),
            ticker_interval_seconds=e.number("TICKER_INTERVAL_SECONDS", d.ticker_interval_seconds),
            ticker_keep=e.integer("TICKER_KEEP", d.ticker_keep, minimum=1),
            ticker_slow_delay_seconds=e.number(
                "TICKER_SLOW_DELAY_SECONDS", d.ticker_slow_delay_seconds
            ),
            worker_max_cached_workflows=e.integer(
                "WORKER_MAX_CACHED_WORKFLOWS", d.worker_max_cached_workflows, minimum=1
            ),
            web_max_viewers=e.integer("WEB_MAX_VIEWERS", d.web_max_viewers, minimum=1),
            web_max_streams=e.integer("WEB_MAX_STREAMS", d.web_max_streams, minimum=1),
            web_viewer_buffer=_viewer_buffer(e, d.web_viewer_buffer, d.web_replay_events),
            web_replay_events=e.integer("WEB_REPLAY_EVENTS", d.web_replay_events, minimum=1),
            web_heartbeat_seconds=e.number("WEB_HEARTBEAT_SECONDS", d.web_heartbeat_seconds),
            web_linger_seconds=e.number("WEB_LINGER_SECONDS", d.web_linger_seconds),
            web_hub_workflow_id=e.text("WEB_HUB_WORKFLOW_ID", d.web_hub_workflow_id),
            web_replay_bytes=e.integer("WEB_REPLAY_BYTES", d.web_replay_bytes, minimum=1024),
            web_allowed_hosts=_web_allowed_hosts(e, d.web_allowed_hosts),
            web_client_max_viewers=e.integer(
                "WEB_CLIENT_MAX_VIEWERS", d.web_client_max_viewers, minimum=1
            ),
            web_client_max_streams=e.integer(
                "WEB_CLIENT_MAX_STREAMS", d.web_client_max_streams, minimum=1
            ),
            web_assistant_workflow_id=e.text(
                "WEB_ASSISTANT_WORKFLOW_ID", d.web_assistant_workflow_id
            ),
            web_listen_port=e.integer(
                "WEB_LISTEN_PORT", d.web_listen_port, minimum=0, maximum=65535
            ),
            llm_base_url=_llm_base_url(e),
            llm_api_key=e.optional_text("LLM_API_KEY"),
            llm_model=e.text("LLM_MODEL", d.llm_model),
            llm_task_queue=e.text("LLM_TASK_QUEUE", d.llm_task_queue),
            llm_heartbeat_timeout_seconds=_at_least(
                e, "LLM_HEARTBEAT_TIMEOUT_SECONDS", d.llm_heartbeat_timeout_seconds, 1.0
            ),
            llm_turns_per_run=e.integer("LLM_TURNS_PER_RUN", d.llm_turns_per_run, minimum=1),
            llm_history_turns=e.integer("LLM_HISTORY_TURNS", d.llm_history_turns, minimum=0),
            llm_history_chars=e.integer("LLM_HISTORY_CHARS", d.llm_history_chars, minimum=0),
            llm_publish_interval_seconds=e.number(
                "LLM_PUBLISH_INTERVAL_SECONDS", d.llm_publish_interval_seconds
            ),
            llm_offline_tokens_per_second=e.number(
                "LLM_OFFLINE_TOKENS_PER_SECOND", d.llm_offline_tokens_per_second
            ),
            assistant_prompt=e.text("ASSISTANT_PROMPT", d.assistant_prompt),
            assistant_conversation_id=e.text(
                "ASSISTANT_CONVERSATION_ID", d.assistant_conversation_id
            ),
            assistant_state_path=Path(e.text("ASSISTANT_STATE_PATH", str(d.assistant_state_path))),
        )


class _Env:
    """Typed, validating reads of one environment mapping."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        return None if value is None or value.strip() == "" else value.strip()

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def optional_text(self, name: str) -> str | None:
        return self._raw(name)

    def choice(self, name: str, default: str, accepted: tuple[str, ...]) -> str:
        raw = self._raw(name)
        if raw is None:
            return default
        if raw.lower() not in accepted:
            raise ConfigError(f"{name}={raw!r} is not accepted; use one of: {', '.join(accepted)}")
        return raw.lower()

    def integer(self, name: str, default: int, *, minimum: int, maximum: int | None = None) -> int:
        raw = self._raw(name)
        if raw is None:
            return default
        upper = "" if maximum is None else f" and at most {maximum}"
        accepted = f"a whole number at least {minimum}{upper}"
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number; use {accepted}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise ConfigError(f"{name}={raw!r} is out of range; use {accepted}")
        return value

    def number(self, name: str, default: float, *, above_0: str = "") -> float:
        """Seconds, 0 or more; with ``above_0`` (why 0 is wrong), more than 0."""
        raw = self._raw(name)
        if raw is None:
            return default
        accepted = "a number of seconds, 0 or more (for example 0.5)"
        if above_0:
            accepted = f"a number of seconds above 0 (for example 0.05): {above_0}"
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a number; use {accepted}") from None
        if not value >= 0 or value == float("inf") or (above_0 and value == 0):  # and nan
            raise ConfigError(f"{name}={raw!r} is out of range; use {accepted}")
        return value


# Why POLL_COOLDOWN_SECONDS must be above 0; subscribe()'s docstring warns of it too
# ("Avoid timedelta(0): an idle subscriber busy-loops").
_BUSY_LOOP = "at 0 a reader that has caught up polls again at once, a busy loop"


def _viewer_buffer(e: _Env, default: int, replay_default: int) -> int:
    """WEB_VIEWER_BUFFER, at most WEB_REPLAY_EVENTS: a viewer holds no more than the window."""
    buffer = e.integer("WEB_VIEWER_BUFFER", default, minimum=1)
    replay = e.integer("WEB_REPLAY_EVENTS", replay_default, minimum=1)
    if buffer > replay:
        raise ConfigError(
            f"WEB_VIEWER_BUFFER={buffer} is larger than WEB_REPLAY_EVENTS={replay}; a viewer's "
            f"buffer must fit in the replay window: use at most {replay}, or raise "
            "WEB_REPLAY_EVENTS"
        )
    return buffer


def _check_temporal_address(e: _Env) -> None:
    """Fail fast on a malformed TEMPORAL_ADDRESS; the SDK reads the variable itself."""
    raw = e.optional_text("TEMPORAL_ADDRESS")
    if raw is None:
        return
    match = _ADDRESS.match(raw)
    if match is None or not 0 < int(match["port"]) < 65536:
        raise ConfigError(
            f"TEMPORAL_ADDRESS={raw!r} is not host:port; use for example temporal:7233, "
            "127.0.0.1:7233 or my-ns.a1b2c.tmprl.cloud:7233 (no scheme, port 1-65535)"
        )


# A host name, an IPv4 address or a bracketed IPv6 address, without a port.
_HOST = re.compile(r"^([A-Za-z0-9](?:[A-Za-z0-9.\-]{0,251}[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])$")


def _web_allowed_hosts(e: _Env, default: tuple[str, ...]) -> tuple[str, ...]:
    """WEB_ALLOWED_HOSTS: the comma-separated host names the dashboard answers to (any port)."""
    raw = e.optional_text("WEB_ALLOWED_HOSTS")
    if raw is None:
        return default
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    bad = [h for h in hosts if not _HOST.match(h)]
    if bad or not hosts:
        raise ConfigError(
            f"WEB_ALLOWED_HOSTS={raw!r} is not accepted ({', '.join(bad) or 'empty'}); use "
            "comma-separated host names without ports, e.g. localhost,127.0.0.1,[::1],dash.example"
        )
    return hosts


def _llm_base_url(e: _Env) -> str | None:
    """LLM_BASE_URL, an http(s) URL such as http://localhost:11434/v1, or None (offline)."""
    raw = e.optional_text("LLM_BASE_URL")
    if raw is not None and not re.match(r"^https?://[^\s/]+", raw):
        raise ConfigError(
            f"LLM_BASE_URL={raw!r} is not an http(s) URL; use for example "
            "https://api.openai.com/v1 or http://localhost:11434/v1, or leave it unset "
            "for the built-in offline model"
        )
    return raw


def _at_least(e: _Env, name: str, default: float, minimum: float) -> float:
    """A number of seconds no smaller than ``minimum``."""
    value = e.number(name, default)
    if value < minimum:
        raw = e.optional_text(name)
        raise ConfigError(
            f"{name}={raw!r} is out of range; use a number of seconds, {minimum} or more"
        )
    return value
