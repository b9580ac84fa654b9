"""Logging: configured once per process, one renderer for everything.

structlog and the standard library (where the Temporal SDK logs, and where
Core's Rust logs are forwarded) share the same processors, so every line has
an ISO UTC timestamp, a level and the service name, as readable text for
people (``LOG_FORMAT=console``) or one JSON object per line for machines
(``LOG_FORMAT=json``).
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger
from temporalio import activity, workflow

# The SDK attaches workflow / activity details as a dict in these record
# extras; we lift the useful keys to top-level fields.
_TEMPORAL_EXTRAS = ("temporal_workflow", "temporal_activity")
_TEMPORAL_KEYS = ("workflow_id", "workflow_type", "activity_type", "attempt")


def _flatten_temporal_extras(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
    # Core's forwarded records carry their raw form too; the message already has it.
    event.pop("temporal_log", None)
    for extra in _TEMPORAL_EXTRAS:
        details = event.pop(extra, None)
        if isinstance(details, dict):
            for key in _TEMPORAL_KEYS:
                if key in details:
                    event.setdefault(key, details[key])
    return event


def configure(service: str, *, fmt: str = "console", level: str = "info") -> None:
    """Route structlog and stdlib logging to stdout in ``fmt``, tagged with ``service``."""

    def add_service(_: WrappedLogger, __: str, event: EventDict) -> EventDict:
        # Not a contextvar: Core's forwarded logs arrive on threads asyncio never saw.
        event.setdefault("service", service)
        return event

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.ExtraAdder(),  # extra={...} on stdlib calls become fields
        _flatten_temporal_extras,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_service,
    ]
    # JSON needs a traceback as a string field; the console renderer prints its own.
    render: list[Processor] = (
        [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
        if fmt == "json"
        else [
            structlog.dev.ConsoleRenderer(
                colors=sys.stdout.isatty(), pad_event_to=22, sort_keys=False
            )
        ]
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *render],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.configure(
        processors=[
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    # The SDK's loggers would also paste their context dict into the message;
    # we take it from the record's extras as fields instead.
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False


def get(name: str | None = None) -> structlog.stdlib.BoundLogger:
    """A logger for module ``name``."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
