"""Services as separate OS processes, as compose would run them.

``SubscriberProcess`` is what the Docker-free tests hand to the chaos routines
(``chaos.subscriber``): kill, start and read the ledger of an OS process.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from testkit.jsonlogs import events, parse_lines
from testkit.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent

# Every process a test started, so that one a failing test left behind is
# ended (by its own id) instead of outliving the session's server.
_started: list[subprocess.Popen[bytes]] = []


def kill_leftovers() -> list[int]:
    """SIGKILL the started processes that still run; return their pids."""
    left = [p for p in _started if p.poll() is None]
    for process in left:
        process.kill()
        process.wait()
    _started.clear()
    return [p.pid for p in left]


class Service:
    """``python -m services.MODULE`` with JSON logs appended to ``log_path``."""

    def __init__(self, module: str, env: dict[str, str], log_path: Path) -> None:
        self.module = module
        self.env = {**os.environ, **env, "LOG_FORMAT": "json"}
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, *, log_pipe: int = 0) -> None:
        """Start it, its log appended to ``log_path``; or, with ``log_pipe``, into a pipe of
        that many bytes that only :meth:`next_log_line` reads.

        A process that logs into a full pipe stops at its next line: the test,
        reading line by line, decides how far it gets.
        """
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", f"services.{self.module}"],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.PIPE if log_pipe else log,
                stderr=subprocess.STDOUT,
            )
        _started.append(self.process)
        if log_pipe and self.process.stdout is not None:
            fcntl.fcntl(self.process.stdout, fcntl.F_SETPIPE_SZ, log_pipe)

    def next_log_line(self) -> dict[str, Any]:
        """The next JSON line from the log pipe (see :meth:`start`); waits for it."""
        pipe = self._running().stdout
        if pipe is None:
            raise RuntimeError(f"{self.module} was not started with a log pipe")
        line = pipe.readline()
        if not line:
            raise AssertionError(f"{self.module} exited; its log pipe ended")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def _running(self) -> subprocess.Popen[bytes]:
        if self.process is None:
            raise RuntimeError(f"{self.module} was never started")
        return self.process

    def kill(self) -> None:
        """SIGKILL, as the kernel's OOM killer or `docker kill` would."""
        process = self._running()
        process.send_signal(signal.SIGKILL)
        process.wait()

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code."""
        process = self._running()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout)

    def wait(self, timeout: float = 120) -> int:
        return self._running().wait(timeout)

    def logs(self) -> list[dict[str, Any]]:
        """Every JSON log line so far; a non-JSON line fails the test, naming it."""
        if not self.log_path.exists():
            return []
        return parse_lines(self.log_path.read_text(), source=f"{self.module}'s log")

    def last(self) -> dict[str, Any]:
        """The last line the service itself logged.

        Core's warnings are forwarded from a thread of their own
        (``[sdk_core::...] ...``) and may land after a service's last word.
        """
        return [line for line in self.logs() if not line["event"].startswith("[")][-1]

    def wait_for_log(self, event: str, timeout: float = 60) -> dict[str, Any]:
        """The first line logging ``event``; fails at once if the process exits without it."""

        def logged() -> dict[str, Any] | None:
            exited = self._running().poll() is not None  # before reading: no line is lost
            found = events(self.logs(), event)
            if found:
                return found[0]
            if exited:
                raise AssertionError(
                    f"{self.module} exited without logging {event!r}; logs: {self.logs()[-5:]}"
                )
            return None

        try:
            return wait_until(logged, what=f"{self.module} to log {event!r}", within=timeout)
        except TimeoutError as err:
            raise AssertionError(f"{err}; logs: {self.logs()[-5:]}") from err


class SubscriberProcess(Service):
    """The subscriber, with the chaos routines' view of its ledger."""

    def __init__(self, env: dict[str, str], log_path: Path, ledger: Path) -> None:
        super().__init__("subscriber", {**env, "LEDGER_PATH": str(ledger)}, log_path)
        self.ledger = ledger
