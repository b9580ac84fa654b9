"""The system under measurement: a dev server, the worker as its own process, load processes.

Every figure is taken with the services' own code running as separate OS
processes, as compose runs them: the worker (``python -m services.worker``),
the subscriber, and the publishers and readers of ``bench.load``. The bench
process itself only starts them, and measures what it cannot from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client

from testkit.devserver import DevServer, dev_server
from testkit.waiting import eventually

ROOT = Path(__file__).resolve().parent.parent
MEMORY_EVERY_S = 0.5  # how often a load process's memory is read while it runs


@dataclass(frozen=True)
class Memory:
    """Resident memory of a process, now and at its peak, in MiB."""

    rss_mib: float
    peak_mib: float


def memory(pid: int) -> Memory:
    """VmRSS and VmHWM of ``pid`` (Linux ``/proc``)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value
    return Memory(
        rss_mib=int(fields["VmRSS"].split()[0]) / 1024,
        peak_mib=int(fields["VmHWM"].split()[0]) / 1024,
    )


def last_memory(pid: int) -> Memory | None:
    """``memory(pid)``, or None once the process has gone (its figures went with it)."""
    try:
        return memory(pid)
    except (FileNotFoundError, ProcessLookupError, KeyError):  # KeyError: a zombie, no VmRSS
        return None


def cpu_seconds(pid: int) -> float:
    """CPU time ``pid`` has used so far, user and system (Linux ``/proc``)."""
    # Fields after the command name, which is in parentheses and may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def busy_seconds() -> float:
    """CPU time every process on the machine has used so far, all cores together."""
    cpu = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    idle = int(cpu[3]) + int(cpu[4])  # idle and iowait
    return (sum(int(x) for x in cpu[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class Stack:
    """A running dev server and worker, with the environment for more processes."""

    server: DevServer
    task_queue: str
    env: dict[str, str]
    workdir: Path
    worker: asyncio.subprocess.Process
    worker_restarts: int = 0  # the worker exited and was started again, as compose does

    @property
    def client(self) -> Client:
        return self.server.client

    def worker_memory(self) -> Memory:
        return memory(self.worker.pid)

    async def spawn(self, module: str, *args: str, **env: str) -> asyncio.subprocess.Process:
        """``python -m module args`` in this stack's environment; stdout is piped."""
        log = (self.workdir / f"{module}-{uuid.uuid4().hex[:6]}.log").open("ab")
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            module,
            *args,
            cwd=ROOT,
            env={**self.env, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=log,
        )


async def ready(process: asyncio.subprocess.Process) -> None:
    """Wait for a role's ``{"ready": true}`` line (a reader about to poll)."""
    if process.stdout is None:
        raise RuntimeError("the role's stdout is not piped")
    line = await asyncio.wait_for(process.stdout.readline(), 60)
    if not line.startswith(b'{"ready"'):
        raise RuntimeError(f"expected the ready line, got {line[:200]!r}")


async def result(process: asyncio.subprocess.Process, *, within: float) -> dict[str, Any]:
    """The JSON object a ``bench.load`` role prints last.

    Past ``within`` seconds it is asked to stop (SIGTERM: a reader then
    reports what it got so far), and killed if it does not. Its resident
    memory as last seen before it exited goes in as ``memory``.
    """
    seen: list[Memory] = []
    watch = asyncio.create_task(_watch_memory(process.pid, seen))
    try:
        parsed = await _result(process, within=within)
    finally:
        watch.cancel()
    if seen:
        parsed["memory"] = dataclasses.asdict(seen[-1])
    return parsed


async def _watch_memory(pid: int, seen: list[Memory]) -> None:
    """Keep the latest ``memory(pid)`` in ``seen`` until the process goes."""
    while (now := last_memory(pid)) is not None:
        seen[:] = [now]
        await asyncio.sleep(MEMORY_EVERY_S)


async def _result(process: asyncio.subprocess.Process, *, within: float) -> dict[str, Any]:
    try:
        out, _ = await asyncio.wait_for(process.communicate(), within)
    except TimeoutError:
        process.send_signal(signal.SIGTERM)
        try:
            out, _ = await asyncio.wait_for(process.communicate(), 15)
        except TimeoutError:
            process.kill()
            await process.wait()
            return {"timed_out": True}
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if not lines:
        return {"error": f"exited {process.returncode} without a result"}
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


@contextlib.asynccontextmanager
async def stack(dynamic_config: Mapping[str, object] | None = None) -> AsyncIterator[Stack]:
    """A fresh dev server and ``python -m services.worker``; both stopped on the way out."""
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        async with dev_server(dynamic_config=dynamic_config) as server:
            task_queue = f"bench-{uuid.uuid4().hex[:6]}"
            env = {
                **os.environ,
                "TEMPORAL_ADDRESS": server.address,
                "TASK_QUEUE": task_queue,
                "LOG_FORMAT": "json",
                "LOG_LEVEL": "warning",
            }
            s = Stack(server, task_queue, env, workdir, await _start_worker(env, workdir))
            keeper = asyncio.create_task(_keep_worker(s))
            try:
                yield s
            finally:
                keeper.cancel()
                worker = s.worker
                if worker.returncode is None:
                    worker.send_signal(signal.SIGTERM)
                    try:
                        await asyncio.wait_for(worker.wait(), 30)
                    except TimeoutError:
                        worker.kill()
                        await worker.wait()


async def _start_worker(env: dict[str, str], workdir: Path) -> asyncio.subprocess.Process:
    """``python -m services.worker``, once it is ready."""
    health = workdir / "worker.healthy"
    health.unlink(missing_ok=True)
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.worker",
        cwd=ROOT,
        env={**env, "HEALTH_FILE": str(health)},
        stdout=(workdir / "worker.log").open("ab"),
        stderr=asyncio.subprocess.STDOUT,
    )
    await eventually(health.exists, what="the worker to be ready", within=60)
    return worker


async def _keep_worker(s: Stack) -> None:
    """Start the worker again whenever it exits, as compose's ``restart: unless-stopped``.

    It exits 1 by design when the SDK cannot evict a workflow run
    (services/shared/evictions.py); the restarts are a figure of their own.
    """
    while True:
        await s.worker.wait()
        s.worker_restarts += 1
        s.worker = await _start_worker(s.env, s.workdir)
