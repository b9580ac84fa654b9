"""The chaos targets against the live stack, run as a new user would: no Python on the host.

Each target runs with ``PYTHON=/nonexistent`` and a ``PATH`` whose ``python``
commands fail loudly, so a target that still needed a host Python fails
here. What each one claims is then checked from outside: the subscriber's
ledger as its own container holds it, the workflow history on the server,
and the containers' start times.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from services.shared.ledger import Audit, Resume, audit
from tests.e2e.cli import compose, docker, subscriber_ledger
from tests.e2e.conftest import ONE_SHOTS, Stack, make

pytestmark = pytest.mark.e2e

LONG_RUNNING = ("worker", "subscriber")
CALLED = "a host Python was called"


@pytest.fixture(scope="module")
def bare_host(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """This project's environment on a host with Docker, Compose and make, and no usable Python.

    It depends on ``stack`` for the project's name and ports, which that fixture exports.
    """
    shims = tmp_path_factory.mktemp("no-python")
    for name in ("python", "python3", "python3.12", "python3.13", "python3.14", "uv"):
        shim = shims / name
        shim.write_text(f'#!/bin/sh\necho "{CALLED}: $0 $*" >&2\nexit 97\n')
        shim.chmod(0o755)
    ours = {str(Path(sys.executable).parent), str(Path(sys.prefix) / "bin")}
    kept = [
        entry
        for entry in os.environ["PATH"].split(os.pathsep)
        if entry not in ours and "pyenv" not in entry and ".venv" not in entry
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    return {**env, "PATH": os.pathsep.join([str(shims), *kept]), "PYTHON": "/nonexistent"}


@pytest.fixture(scope="module")
def settled(stack: Stack) -> Stack:
    """The stack once the one-shot scenarios are done, so no fault lands in their output."""
    stack.wait_until(
        "the one-shot scenarios to finish",
        lambda: all(stack.states().get(s, {}).get("State") == "exited" for s in ONE_SHOTS),
    )
    return stack


def _make(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = make(*args, env=env)
    assert CALLED not in result.stdout + result.stderr  # no Python of the host's ran
    return result


def _passed(env: dict[str, str], target: str, *args: str) -> str:
    result = _make(env, target, *args)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "verdict: PASS" in result.stdout
    return result.stdout


def _audited() -> Audit:
    result = audit(subscriber_ledger())
    assert result.ok, result
    return result


def _started_at(service: str) -> list[str]:
    containers = compose("ps", "--all", "--quiet", service).stdout.split()
    return sorted(docker("inspect", "--format", "{{.State.StartedAt}}", *containers).split())


def _running(stack: Stack, *services: str) -> bool:
    states = stack.states()
    return all(states[s]["State"] == "running" for s in services)


def test_make_chaos_subscriber(settled: Stack, bare_host: dict[str, str]) -> None:
    out = _passed(bare_host, "chaos-subscriber")
    assert "killed the subscriber (SIGKILL)" in out and "missing=0 repeated=0" in out
    seam = re.search(r"last offset before the kill (\d+), resumed at (\d+), first after (\d+)", out)
    assert seam, out
    last, resumed, first = (int(n) for n in seam.groups())
    assert resumed == first == last + 1
    # The ledger itself holds that seam: a resume record at that offset, then that event.
    records = subscriber_ledger()
    marks = [i for i, r in enumerate(records) if isinstance(r, Resume) and r.next_offset == resumed]
    assert marks, "no resume record at the offset the tool reported"
    after = records[marks[-1] + 1 :]
    assert any(getattr(r, "offset", None) == first for r in after)
    _audited()
    assert _running(settled, "subscriber")


def test_make_soak_subscriber_ten_kills(settled: Stack, bare_host: dict[str, str]) -> None:
    before = _audited().restarts
    out = _passed(bare_host, "soak-subscriber", "N=10")
    assert "kills=10" in out and "missing=0 repeated=0" in out
    assert re.search(r"random seed (\d+) \(replay this run with SEED=\1\)", out)
    assert _audited().restarts >= before + 10  # each kill left its resume record
    assert _running(settled, "subscriber")


def test_make_chaos_worker(settled: Stack, bare_host: dict[str, str]) -> None:
    out = _passed(bare_host, "chaos-worker")
    assert "status exactly once=True retry marked=True" in out
    order = re.search(r"(chaos-order-[0-9a-f]{6}): charge_card is running", out)
    assert order, out
    history = _history(order.group(1))
    types = [e["eventType"] for e in history]
    assert types[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
    retried = [
        e["activityTaskStartedEventAttributes"]
        for e in history
        if e["eventType"] == "EVENT_TYPE_ACTIVITY_TASK_STARTED"
    ]
    # The server's word: the charge ran again after the first attempt's heartbeat stopped.
    assert retried[-1]["attempt"] >= 2
    assert retried[-1]["lastFailure"]["timeoutFailureInfo"]["timeoutType"] == (
        "TIMEOUT_TYPE_HEARTBEAT"
    )
    assert _running(settled, "worker")


def _history(workflow_id: str) -> list[dict[str, Any]]:
    """The workflow's history, from the server (the CLI in the temporal container)."""
    out = compose(
        "exec",
        "-T",
        "temporal",
        "temporal",
        "workflow",
        "show",
        "--workflow-id",
        workflow_id,
        "--output",
        "json",
        "--address",
        "127.0.0.1:7233",
    ).stdout
    events: list[dict[str, Any]] = json.loads(out)["events"]
    return events


def test_make_chaos_temporal(settled: Stack, bare_host: dict[str, str]) -> None:
    before = {s: _started_at(s) for s in ("temporal", *LONG_RUNNING)}
    out = _passed(bare_host, "chaos-temporal")
    assert "missing=0 repeated=0" in out and "services reconnected in place=2/2" in out
    after = {s: _started_at(s) for s in ("temporal", *LONG_RUNNING)}
    assert after["temporal"] != before["temporal"], "temporal was not restarted"
    assert {s: after[s] for s in LONG_RUNNING} == {s: before[s] for s in LONG_RUNNING}
    _audited()


def test_bad_count_is_refused_naming_what_is_accepted(
    stack: Stack, bare_host: dict[str, str]
) -> None:
    result = _make(bare_host, "soak-subscriber", "N=abc")
    assert result.returncode != 0
    assert "N='abc' is not accepted; use a whole number, 1 or more" in result.stderr
    assert "Error 2" in result.stderr  # the tool's exit code, as make reports it
    assert "verdict" not in result.stdout


def test_a_stack_that_is_not_up_is_refused_naming_make_up(bare_host: dict[str, str]) -> None:
    absent = f"wfs-absent-{uuid.uuid4().hex[:6]}"
    result = _make({**bare_host, "COMPOSE_PROJECT_NAME": absent}, "chaos-subscriber")
    assert result.returncode != 0 and "Error 2" in result.stderr
    assert "is not running. Start the stack with `make up`" in result.stderr
    # Refused before `docker compose run` could create anything for that project.
    label = f"label=com.docker.compose.project={absent}"
    assert docker("container", "ls", "--all", "--quiet", "--filter", label).split() == []
    for kind in ("network", "volume"):
        assert docker(kind, "ls", "--quiet", "--filter", label).split() == []


def test_up_never_starts_chaos_and_only_chaos_gets_the_socket(stack: Stack) -> None:
    assert "chaos" not in compose("config", "--services").stdout.split()
    containers = compose("ps", "--all", "--quiet").stdout.split()
    mounts = {
        c["Name"]: [m["Destination"] for m in c["Mounts"]]
        for c in json.loads(docker("inspect", *containers))
    }
    assert not [name for name, paths in mounts.items() if "/var/run/docker.sock" in paths]


def test_chaos_runs_as_app_in_the_sockets_group(stack: Stack) -> None:
    probe = (
        "import os; from chaos.engine import Stack, run_as_app; run_as_app(); "
        "print(os.getuid(), Stack.find().client.ping())"
    )
    run = compose("run", "--rm", "--entrypoint", "python", "chaos", "-c", probe)
    assert run.stdout.split() == ["10001", "True"]
