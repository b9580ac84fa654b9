"""The edge bench's figures (``bench.edge``), and its table: each edge row under its baseline."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bench.delivery import Delivery
from bench.report import _failures
from bench.stack import Memory


@dataclass(frozen=True)
class Cores:
    """CPU used while the events were published, in cores (1.0 is one core busy)."""

    web: float
    edge: float  # nginx's master and workers; 0 on the direct side
    clients: float  # the viewer processes together
    machine: float  # every process on the machine


@dataclass(frozen=True)
class Side:
    """One path of one run: what its viewers saw and what it cost."""

    path: str  # "direct" or "edge"
    delivery: Delivery
    published: int
    client_requests: int  # long-polls the viewers sent (sse: one connection each)
    origin_requests: int  # of those, the ones that reached web
    updates: int  # stream polls accepted, from the hub's history
    cores: Cores
    web_memory: Memory | None
    edge_memory: Memory | None
    notes: list[str] = field(default_factory=list)  # what the side's setup or nginx reported

    def per_event(self, n: int) -> float:
        return n / self.published if self.published else math.nan


@dataclass(frozen=True)
class EdgeRun:
    mode: str  # "long-poll" or "sse"
    viewers: int
    direct: Side  # the baseline
    edge: Side


@dataclass(frozen=True)
class EdgeFigures:
    rate: float
    events: int
    client_processes: int
    descriptors: int  # the viewer processes' and nginx's limit: each viewer holds one socket
    runs: list[EdgeRun]


_NAMES = {
    "long-poll": "Durable Streams long-poll (/v1/streams/{id}?live=long-poll)",
    "sse": "SSE (/streams/{id})",
}


def _ms(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:,.0f} ms"


def _mib(m: Memory | None) -> str:
    return "-" if m is None else f"{m.rss_mib:,.0f} MiB"


def _side_row(viewers: int, side: Side, mark: str) -> str:
    d = side.delivery
    return (
        f"{viewers:>7,} {side.path:<7} {_ms(d.p50_ms):>8} {_ms(d.p99_ms):>9} "
        f"{f'{d.complete:,} of {d.viewers:,}':>16} {side.per_event(side.client_requests):>9,.1f} "
        f"{side.per_event(side.origin_requests):>9,.2f} {side.per_event(side.updates):>8.2f} "
        f"{side.cores.web:>5.2f} {side.cores.edge:>5.2f} {side.cores.clients:>7.2f} "
        f"{side.cores.machine:>5.2f} {_mib(side.web_memory):>8} {_mib(side.edge_memory):>8}{mark}"
    )


def _troubles(viewers: int, side: Side) -> list[str]:
    """What went wrong on one side, under a line naming it (none when nothing did)."""
    found = [*_failures(side.delivery), *(f"{'':<28} {note}" for note in side.notes)]
    return [f"{viewers:>7,} {side.path}:", *found] if found else []


def edge_tables(f: EdgeFigures) -> list[tuple[str, list[str]]]:
    """One table per kind of viewer: each size's edge row under its direct baseline."""
    head = (
        f"{'viewers':>7} {'path':<7} {'p50':>8} {'p99':>9} {'complete':>16} {'req/ev':>9} "
        f"{'origin/ev':>9} {'Upd/ev':>8} {'web':>5} {'edge':>5} {'viewers':>7} {'all':>5} "
        f"{'web RSS':>8} {'edge RSS':>8}"
    )
    tables = []
    for mode, name in _NAMES.items():
        rows = [head]
        for run in (r for r in f.runs if r.mode == mode):
            rows.append(_side_row(run.viewers, run.direct, "  <- baseline"))
            rows.append(_side_row(run.viewers, run.edge, ""))
            rows += _troubles(run.viewers, run.direct) + _troubles(run.viewers, run.edge)
        rows.append(
            "req/ev: requests the viewers sent per event (sse: one connection each); origin/ev: "
            "those that reached web; Upd/ev: Temporal Updates (stream polls) per event; "
            "web, edge (nginx master and workers), viewers, all: CPU in cores while publishing"
        )
        title = (
            f"{name}: through the edge (nginx) under the same viewers straight on one web, "
            f"{f.rate:.0f} events/s, {f.events} events, {f.client_processes} viewer processes"
        )
        tables.append((title, rows))
    return tables
