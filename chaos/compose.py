"""The compose stack, driven through the ``docker compose`` CLI.

Honours the usual Compose environment (``COMPOSE_PROJECT_NAME``,
``COMPOSE_FILE``), so the same commands work on ``make up`` and on the
isolated project that ``make e2e`` runs.
"""

from __future__ import annotations

import subprocess

LEDGER = "/data/events.jsonl"


def compose(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``docker compose ARGS``; on failure raise RuntimeError with its stderr."""
    result = subprocess.run(
        ["docker", "compose", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        raise RuntimeError(f"docker compose {' '.join(args)}: {result.stderr.strip()}")
    return result


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
