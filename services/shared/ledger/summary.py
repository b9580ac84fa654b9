"""A ledger summed up for a dashboard or a report, read without the writer's lock."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from services.shared.ledger.reading import load
from services.shared.ledger.records import Event, Position, Resume, Section, Totals, advance


@dataclass(frozen=True)
class Summary:
    """A ledger as it stands, for a dashboard or a report."""

    runs: int  # sections ever started, compacted ones included
    events: int  # events ever recorded, compacted ones included
    position: Position | None
    last_event: Event | None
    resumes: list[Resume]  # the kept ones, oldest first


def summarize(path: Path, *, resumes: int = 20) -> Summary | None:
    """Read ``path`` without taking its lock; None while it does not exist."""
    records = load(path)
    if records is None:
        return None
    runs = events = 0
    position: Position | None = None
    last_event: Event | None = None
    seams: deque[Resume] = deque(maxlen=resumes)  # the newest ``resumes``; none for 0
    for record in records:
        position = advance(position, record)
        if isinstance(record, Totals):
            runs, events = runs + record.runs, events + record.events
        elif isinstance(record, Section):
            runs += 1
        elif isinstance(record, Event):
            events, last_event = events + 1, record
        elif isinstance(record, Resume):
            seams.append(record)
    return Summary(runs, events, position, last_event, list(seams))
