"""The host's ``docker`` / ``docker compose`` CLI, as the e2e tests drive it.

Honours the usual Compose environment (``COMPOSE_PROJECT_NAME``,
``COMPOSE_FILE``), so the same commands work on ``make up`` and on the
isolated project that ``make e2e`` runs.
"""

from __future__ import annotations

import subprocess


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
    """Output of ``docker ARGS``."""
    return run_docker(*args, timeout=timeout).stdout
