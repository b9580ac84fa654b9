"""The edge (deploy/edge/nginx.conf) as an OS process on this host, in front of bench web processes.

The bench runs compose's own config, not a copy: ``render`` takes
deploy/edge/nginx.conf and changes only what ties it to its container (the
port, the upstream file start.sh writes, the pid, temporary, cache and log
paths, which all go under one directory of the bench's) and what the host's
descriptor limit asks for (``worker_connections``, ``worker_rlimit_nofile``).
Every substitution must match the config exactly once, so a change to the
config that the bench would silently miss fails the bench instead.

The access log is the edge's own ``edge`` format: ``upstream=`` names the
replica a request went to, ``-`` when the cache answered it, which is how
``requests`` tells the requests that reached ``web`` from those that did not.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import resource
import signal
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench.stack import ROOT, Memory, cpu_seconds, memory
from testkit.devserver import free_port
from testkit.tls import nginx
from testkit.waiting import eventually

CONFIG = ROOT / "deploy" / "edge" / "nginx.conf"


def render(run: Path, *, port: int, upstreams: list[str], clients: int) -> Path:
    """Write the host's edge config (and its upstream file) under ``run``; return its path."""
    run.mkdir(parents=True, exist_ok=True)
    files = run.resolve()
    # As compose's start.sh writes them: one line per replica, by address.
    (files / "upstream.conf").write_text(
        "".join(f"server {address} max_fails=1 fail_timeout=10s;\n" for address in upstreams)
    )
    # A worker holds a client's socket and, proxied, the replica's: two connections each,
    # all of them in one worker at worst; as many as this host's descriptor limit allows.
    descriptors = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 2 * clients + 1024)
    connections = descriptors - 64  # the rest: log, cache and temporary files
    first = f"worker_processes auto;\nworker_rlimit_nofile {descriptors};\n"
    if os.geteuid() == 0:  # else the workers would drop to `nobody`, who cannot write here
        first += f"user {getpass.getuser()};\n"
    text = CONFIG.read_text()
    for old, new in (
        ("worker_processes auto;\n", first),
        ("pid /tmp/nginx.pid;", f"pid {files}/nginx.pid;"),
        ("worker_connections 4096;", f"worker_connections {connections};"),
        ("access_log /dev/stdout edge;", f"access_log {files}/access.log edge;"),
        ("include /tmp/upstream.conf;", f"include {files}/upstream.conf;"),
        ("proxy_cache_path /var/cache/nginx/streams", f"proxy_cache_path {files}/cache"),
        ("listen 8000;", f"listen 127.0.0.1:{port};"),
    ):
        if text.count(old) != 1:
            raise ValueError(f"{CONFIG}: expected {old!r} once, found it {text.count(old)} times")
        text = text.replace(old, new)
    temporary = text.count("_temp_path /tmp/")
    if temporary != 5:
        raise ValueError(f"{CONFIG}: expected 5 temporary paths under /tmp/, found {temporary}")
    text = text.replace("_temp_path /tmp/", f"_temp_path {files}/")
    config = files / "nginx.conf"
    config.write_text(text)
    return config


@dataclass(frozen=True)
class Edge:
    """A running edge: its URL, its master's pid, its access log and its own log."""

    url: str
    pid: int
    access_log: Path
    log: Path

    def alerts(self) -> list[str]:
        """nginx's complaints so far (error and worse): how many, and the first one."""
        kinds = ("[error]", "[crit]", "[alert]", "[emerg]")
        lines = self.log.read_text(errors="replace").splitlines()
        bad = [line for line in lines if any(kind in line for kind in kinds)]
        if not bad:
            return []
        # The message, without the date, pid and connection number in front of it.
        first = bad[0].split(": ", 1)[-1][:200]
        return [f"nginx logged {len(bad):,} errors; the first: {first}"]

    def pids(self) -> list[int]:
        """The master and its children (the workers, the cache manager and loader)."""
        found = [self.pid]
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                with contextlib.suppress(OSError):
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(stat[1]) == self.pid:
                        found.append(int(entry.name))
        return found

    def cpu_seconds(self) -> float:
        """CPU used so far by the master and the workers alive now."""
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
        return total

    def memory(self) -> Memory:
        """Resident memory of the master and its children, added up (shared pages in each)."""
        each = [memory(pid) for pid in self.pids()]
        return Memory(sum(m.rss_mib for m in each), sum(m.peak_mib for m in each))

    def requests(self, *needles: str) -> tuple[int, int]:
        """Requests logged so far whose line holds every needle: (all, those that reached web)."""
        seen = origin = 0
        with self.access_log.open() as log:
            for line in log:
                if all(needle in line for needle in needles):
                    seen += 1
                    origin += "upstream=-" not in line
        return seen, origin


@contextlib.asynccontextmanager
async def edge(run: Path, upstreams: list[str], *, clients: int) -> AsyncIterator[Edge]:
    """nginx with the rendered edge config in front of ``upstreams``; stopped on the way out."""
    port = free_port()
    config = render(run, port=port, upstreams=upstreams, clients=clients)
    with (run / "nginx.log").open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            nginx(), "-p", str(run), "-e", "stderr", "-c", str(config), "-g", "daemon off;",
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
    try:
        await eventually(
            lambda: _listening(port, process, run / "nginx.log"),
            what=f"nginx to listen on port {port}",
            within=30,
        )
        yield Edge(f"http://127.0.0.1:{port}", process.pid, run / "access.log", run / "nginx.log")
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)  # fast shutdown, by its own pid
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


def _listening(port: int, process: asyncio.subprocess.Process, log: Path) -> bool:
    if process.returncode is not None:
        raise RuntimeError(f"nginx exited {process.returncode}: {log.read_text().strip()[-600:]}")
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0
