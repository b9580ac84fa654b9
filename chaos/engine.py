"""The compose project's containers, driven through the Docker Engine API.

The chaos tools run in the ``chaos`` compose service: a container of the
project's image with the engine's socket mounted, started only by the chaos
targets. They use the Docker SDK for Python (the image has no ``docker``
CLI) and find the containers of their own compose project by the labels
Compose puts on every container, their own included, so the same command
serves ``make up`` and the separately named project of ``make e2e``.
"""

from __future__ import annotations

import os
import socket
import stat
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, NotFound

from testkit.waiting import wait_until

SOCKET = Path("/var/run/docker.sock")
PROJECT = "com.docker.compose.project"
SERVICE = "com.docker.compose.service"
ONE_OFF = "com.docker.compose.oneoff"
APP_UID = APP_GID = 10001  # the image's `app` user
HOW_TO_RUN = "run the chaos tools through make (`make chaos-subscriber`, ...)"


class Refusal(Exception):
    """The chaos tools cannot run here; the message says why and what to do (exit 2)."""


def run_as_app(socket_path: Path = SOCKET) -> None:
    """Leave root for the image's ``app`` user, adding the group that owns the socket.

    The container starts as root for this alone: the socket's group differs
    between hosts (a ``docker`` group of any gid on Linux, ``root`` on Docker
    Desktop), and only from inside the container can we see which it is.
    """
    if os.getuid() != 0:
        return  # started as another user on purpose: keep it
    try:
        found = socket_path.stat()
    except FileNotFoundError:
        raise Refusal(f"the Docker socket is not mounted at {socket_path}; {HOW_TO_RUN}") from None
    if not stat.S_ISSOCK(found.st_mode):
        # Docker creates a directory for a bind source that does not exist.
        raise Refusal(
            f"{socket_path} here is not the Docker engine's socket: set DOCKER_SOCKET to its "
            "path on this host (for rootless Docker, $XDG_RUNTIME_DIR/docker.sock)"
        )
    os.setgroups([found.st_gid])
    os.setgid(APP_GID)
    os.setuid(APP_UID)


class Service:
    """Every container of one compose service: one, or several when scaled."""

    def __init__(self, stack: Stack, name: str) -> None:
        self.stack = stack
        self.name = name

    def _containers(self) -> list[Any]:
        found = self.stack.containers(self.name)
        if not found:
            raise RuntimeError(
                f"no {self.name} container in compose project {self.stack.project!r}"
            )
        return found

    def kill(self) -> None:
        """SIGKILL every running container of the service: no handler runs."""
        for container in self._containers():
            if container.status == "running":
                container.kill(signal="SIGKILL")

    def start(self) -> None:
        """Start every container of the service (a running one is left as it is)."""
        for container in self._containers():
            container.start()

    def restart(self) -> None:
        """Stop (SIGTERM, then SIGKILL after 10 s) and start again, volumes kept."""
        for container in self._containers():
            container.restart(timeout=10)

    def running(self) -> bool:
        return _all_running(self._containers())

    def healthy(self) -> bool:
        return all(
            c.attrs["State"].get("Health", {}).get("Status") == "healthy"
            for c in self._containers()
        )

    def wait_healthy(self, within: float) -> float:
        """Seconds until every container's healthcheck passes."""
        began = time.monotonic()
        wait_until(self.healthy, what=f"{self.name} to be healthy", within=within, interval=0.5)
        return time.monotonic() - began

    def started_at(self) -> list[str]:
        """When each container last started: unchanged across a fault means none restarted."""
        return sorted(str(c.attrs["State"]["StartedAt"]) for c in self._containers())


class StackSubscriber(Service):
    """The ``subscriber`` service, its ledger read from its volume (mounted read-only here).

    A file read works while the container is down, and costs no ``exec``.
    """

    def __init__(self, stack: Stack, ledger: Path) -> None:
        super().__init__(stack, "subscriber")
        self.ledger = ledger


class Stack:
    """The compose project this container belongs to."""

    def __init__(self, client: Any, project: str) -> None:
        self.client = client
        self.project = project

    @classmethod
    def find(cls) -> Stack:
        """Connect to the engine and learn our project from our own container's labels."""
        try:
            client = docker.DockerClient(base_url=f"unix://{SOCKET}")
        except DockerException as err:
            raise Refusal(
                f"cannot use the Docker engine through {SOCKET} as uid {os.getuid()} "
                f"(groups {os.getgroups()}): {err}"
            ) from err
        try:
            me = client.containers.get(socket.gethostname())
        except NotFound:
            me = None
        project = me.labels.get(PROJECT) if me is not None else None
        if not project:
            raise Refusal(f"this is not a container of a compose project; {HOW_TO_RUN}")
        return cls(client, str(project))

    def containers(self, service: str) -> list[Any]:
        """The service's containers, stopped ones too; one-off runs are not the service."""
        labels = [f"{PROJECT}={self.project}", f"{SERVICE}={service}", f"{ONE_OFF}=False"]
        return list(self.client.containers.list(all=True, filters={"label": labels}))

    def service(self, name: str) -> Service:
        return Service(self, name)

    def require_running(self, *services: str) -> None:
        """Refuse, naming the fix, unless every container of ``services`` is running."""
        missing = [s for s in services if not _all_running(self.containers(s))]
        if missing:
            raise Refusal(
                f"not running in compose project {self.project!r}: {', '.join(missing)}. "
                "Start the stack with `make up` (and see `make ps`)."
            )

    def start_stopped(self, *services: str) -> list[str]:
        """Start whatever of ``services`` is down (after an interruption); name what was."""
        down = [s for s in services if not self.service(s).running()]
        for name in down:
            self.service(name).start()
        return down


def _all_running(containers: list[Any]) -> bool:
    """At least one container, and every one running (a scaled service: all replicas)."""
    return bool(containers) and all(c.status == "running" for c in containers)
