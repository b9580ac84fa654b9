"""What many viewers saw, merged from their processes: latency, completeness, spread.

Each ``bench.viewers`` process reports a latency histogram, its viewers'
audits, and each event's first and last receipt; ``merge`` adds them up into
one :class:`Delivery` over every viewer of a run.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Delivery:
    """Publish-to-receipt latency over every viewer's events, and each viewer's audit."""

    viewers: int
    complete: int  # every event, once, in order, to the final one
    samples: int  # latencies measured (the first few events of each viewer are warm-up)
    p50_ms: float
    p99_ms: float
    max_ms: float
    failed: dict[str, int]  # why, and how many viewers
    stalled: int  # neither complete nor failed when the run ended
    lost: int
    repeated: int
    examples: list[str]  # a few incomplete viewers, described
    connect_s: float  # slowest process: start to every viewer connected (sse)
    # Where the time goes, event by event: its first receipt by any viewer,
    # and the time from that to its last receipt (the fan-out's spread).
    first_p50_ms: float
    first_p99_ms: float
    spread_p50_ms: float
    spread_p99_ms: float


def merge(results: list[dict[str, Any]], shares: list[int]) -> Delivery:
    """Every viewer process's figures as one: latencies merged, viewers added up.

    ``shares`` is how many viewers each process ran: a process that failed
    outright (no figures) counts all of its viewers as failed.
    """
    bins: Counter[float] = Counter()
    failed: Counter[str] = Counter()
    complete = stalled = lost = repeated = 0
    examples: list[str] = []
    connect = 0.0
    spread: dict[int, tuple[float, float]] = {}
    for got, expected in zip(results, shares, strict=True):
        if "viewers" not in got:  # the process itself failed: all its viewers with it
            failed[str(got.get("error") or "the process timed out")] += expected
            continue
        width = float(got["bin_ms"])
        bins.update({b * width: n for b, n in got["latency_bins"]})
        failed.update(got["failed"])
        complete += got["complete"]
        stalled += got["stalled"]
        lost += got["lost"]
        repeated += got["repeated"]
        examples += got["examples"]
        connect = max(connect, float(got.get("connect_s", 0.0)))
        for seq, first, last in got["per_event"]:
            was = spread.get(seq, (first, last))
            spread[seq] = (min(was[0], first), max(was[1], last))
    p50, p99, top = _percentiles(bins, (0.5, 0.99, 1.0))
    firsts = Counter(round(first, 1) for first, _ in spread.values())
    spreads = Counter(round(last - first, 1) for first, last in spread.values())
    first_p50, first_p99 = _percentiles(firsts, (0.5, 0.99))
    spread_p50, spread_p99 = _percentiles(spreads, (0.5, 0.99))
    return Delivery(
        viewers=sum(shares),
        complete=complete,
        samples=sum(bins.values()),
        p50_ms=p50,
        p99_ms=p99,
        max_ms=top,
        failed=dict(failed),
        stalled=stalled,
        lost=lost,
        repeated=repeated,
        examples=examples[:5],
        connect_s=connect,
        first_p50_ms=first_p50,
        first_p99_ms=first_p99,
        spread_p50_ms=spread_p50,
        spread_p99_ms=spread_p99,
    )


def _percentiles(bins: Counter[float], quantiles: tuple[float, ...]) -> list[float]:
    """The value at each quantile of the histogram (nearest rank); NaN when it is empty."""
    total = sum(bins.values())
    if total == 0:
        return [float("nan")] * len(quantiles)
    ordered = sorted(bins.items())
    values = []
    for q in quantiles:
        rank, seen = max(1, round(total * q)), 0
        for value, count in ordered:
            seen += count
            if seen >= rank:
                values.append(value)
                break
    return values
