"""Logging: one renderer for our lines, the SDK's and Core's, each naming the service."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from services.shared import logs


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Put logging back as pytest had it, so later tests' capture_logs works."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    yield
    root.handlers[:], root.level = saved
    structlog.reset_defaults()


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.usefixtures("restore_logging")
def test_every_source_renders_as_one_json_object_naming_the_service(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Configure here, not in a fixture: capsys swaps stdout only for the test body.
    logs.configure("worker", fmt="json")
    logs.get("ours").info("worker ready", task_queue="q")
    workflow_extra = {"workflow_id": "pipeline", "workflow_type": "PipelineWorkflow", "x": 1}
    logging.getLogger("temporalio.workflow").info(
        "pipeline done", extra={"events": 61, "temporal_workflow": workflow_extra}
    )
    core = logging.LogRecord("temporalio.core", logging.WARNING, __file__, 1, "retried", None, None)
    core.temporal_log = object()  # what Core's forwarding attaches
    logging.getLogger("temporalio.core").handle(core)

    ours, sdk, rust = _lines(capsys)
    assert ours["event"] == "worker ready" and ours["task_queue"] == "q"
    assert sdk["event"] == "pipeline done" and sdk["events"] == 61
    assert (sdk["workflow_id"], sdk["workflow_type"]) == ("pipeline", "PipelineWorkflow")
    assert "temporal_workflow" not in sdk and "x" not in sdk
    assert rust["event"] == "retried" and "temporal_log" not in rust
    for line in (ours, sdk, rust):
        assert line["service"] == "worker"
        assert str(line["timestamp"]).endswith("Z") and line["level"] in ("info", "warning")
