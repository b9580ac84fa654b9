"""The chaos tools' view of the compose stack: what counts as running.

The Docker engine is stood in for by a few lines that answer ``containers.list``
the way the Docker SDK does (containers with a ``status``, found by label);
these tests run without Docker. Nothing of Temporal is involved.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from chaos.engine import SERVICE, Refusal, Stack


@dataclass
class _Container:
    status: str


@dataclass
class _Containers:
    by_service: dict[str, list[_Container]] = field(default_factory=dict)

    def list(self, *, all: bool, filters: dict[str, list[str]]) -> list[_Container]:
        (service,) = [v.split("=", 1)[1] for v in filters["label"] if v.startswith(SERVICE)]
        return self.by_service.get(service, [])


@dataclass
class _Engine:
    containers: _Containers


def _stack(**services: list[str]) -> Stack:
    found = {name: [_Container(s) for s in states] for name, states in services.items()}
    engine: Any = _Engine(_Containers(found))
    return Stack(engine, "demo")


def test_a_service_with_one_replica_down_is_not_running() -> None:
    stack = _stack(worker=["running", "exited"], temporal=["running"], subscriber=[])
    with pytest.raises(Refusal) as caught:
        stack.require_running("temporal", "worker", "subscriber")
    assert "not running in compose project 'demo': worker, subscriber" in str(caught.value)
    stack.require_running("temporal")
    assert stack.start_stopped("temporal") == []
