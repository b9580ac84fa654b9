"""The host's ``docker`` / ``docker compose`` CLI, as the e2e tests drive it.

Honours the usual Compose environment (``COMPOSE_PROJECT_NAME``,
``COMPOSE_FILE``), so the same commands work on ``make up`` and on the
isolated project that ``make e2e`` runs.
"""

from __future__ import annotations

import subprocess

from services.shared.ledger import Record, parse

# Where the subscriber keeps its ledger in its container (LEDGER_PATH, by default).
LEDGER_IN_CONTAINER = "/data/events.jsonl"


def run_docker(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``docker ARGS``; with ``check``, a failure raises RuntimeError with its stderr."""
    result = _run(args, check=check, timeout=timeout)
    stdout, stderr = (out.decode(errors="replace") for out in (result.stdout, result.stderr))
    return subprocess.CompletedProcess(result.args, result.returncode, stdout, stderr)


def _run(
    args: tuple[str, ...], *, check: bool, timeout: float
) -> subprocess.CompletedProcess[bytes]:
    """``docker ARGS``, its output as bytes."""
    result = subprocess.run(["docker", *args], capture_output=True, timeout=timeout, check=False)
    if check and result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"docker {' '.join(args)}: {stderr}")
    return result


def compose(
    *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``docker compose ARGS`` against this project."""
    return run_docker("compose", *args, check=check, timeout=timeout)


def docker(*args: str, timeout: float = 120) -> str:
    """Output of ``docker ARGS``."""
    return run_docker(*args, timeout=timeout).stdout


def subscriber_ledger() -> list[Record]:
    """The subscriber's ledger, read in its own container, by the ledger's own parser.

    As bytes: a kill can tear a multi-byte character at the tail, which a text
    read would refuse; ``parse`` takes the complete lines only.
    """
    args = ("compose", "exec", "-T", "subscriber", "cat", LEDGER_IN_CONTAINER)
    return parse(_run(args, check=True, timeout=120).stdout, "the subscriber's ledger")
