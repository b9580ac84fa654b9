"""The compose stack, driven through the ``docker compose`` CLI.

Honours the usual Compose environment (``COMPOSE_PROJECT_NAME``,
``COMPOSE_FILE``), so the same commands work on ``make up`` and on the
isolated project that ``make e2e`` runs.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from typing import Any

LEDGER = "/data/events.jsonl"


def run_docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; with ``check``, a failure raises RuntimeError with its stderr."""
    result = subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {result.stderr.strip()}")
    return result


def compose(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``docker compose ARGS`` against this project."""
    return run_docker("compose", *args, check=check, timeout=timeout)


def docker(*args: str, timeout: float = 120) -> str:
    """Output of ``docker ARGS``, for one-off containers, which compose does not list."""
    return run_docker(*args, timeout=timeout).stdout


def require_running(*services: str) -> None:
    """Stop, naming the fix, if the stack (or part of it) is not up."""
    running = set(compose("ps", "--status", "running", "--services").stdout.split())
    missing = [s for s in services if s not in running]
    if missing:
        raise SystemExit(
            f"chaos: not running: {', '.join(missing)}. Start the stack with `make up` "
            "(and see `make ps`)."
        )


class ComposeService:
    """One compose service: kill it, start it, run a command in it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def kill(self) -> None:
        compose("kill", "--signal", "SIGKILL", self.name)

    def start(self) -> None:
        compose("start", self.name)

    def exec(self, *command: str) -> str:
        return compose("exec", "-T", self.name, *command).stdout


class ComposeSubscriber(ComposeService):
    """The ``subscriber`` service, with its ledger read from its volume."""

    def __init__(self) -> None:
        super().__init__("subscriber")

    def read_ledger(self) -> str:
        return self.exec("cat", LEDGER)


def started_at(service: str) -> list[str]:
    """When each of the service's containers (scaled or not) last started.

    Unchanged across a fault means no container was restarted: the service
    recovered in place.
    """
    containers = compose("ps", "--all", "--quiet", service).stdout.split()
    return sorted(docker("inspect", "--format", "{{.State.StartedAt}}", *containers).split())


def wait_healthy(service: str, timeout: float = 120) -> float:
    """Seconds until the service's healthcheck passes."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        if compose("ps", "--format", "{{.Health}}", service).stdout.strip() == "healthy":
            return time.monotonic() - began
        time.sleep(0.5)
    raise TimeoutError(f"{service} not healthy after {timeout:.0f} s")


class OneOff:
    """A one-off run of a scenario service with JSON logs, for chaos to read."""

    def __init__(self, service: str, **env: str) -> None:
        self.name = f"chaos-{service}-{uuid.uuid4().hex[:6]}"
        settings = [f"--env={k}={v}" for k, v in {**env, "LOG_FORMAT": "json"}.items()]
        compose("run", "--detach", "--no-deps", "--name", self.name, *settings, service)

    def logs(self) -> list[dict[str, Any]]:
        out = docker("logs", self.name)
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def wait_for(self, event: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(line["event"] == event for line in self.logs()):
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.name} did not log {event!r} within {timeout:.0f} s")

    def exit_code(self, timeout: float = 300) -> int:
        return int(docker("wait", self.name, timeout=timeout).strip())

    def remove(self) -> None:
        docker("rm", "--force", self.name)
