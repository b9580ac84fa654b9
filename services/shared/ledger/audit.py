"""The audit: every offset of every section exactly once, in order, to its end."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from services.shared.ledger.records import (
    Event,
    Record,
    Resume,
    Section,
    Totals,
    finishes_run,
)

# How many faults of each kind an audit names; beyond these it only counts.
EXAMPLES = 10


@dataclass
class Faults:
    """How many faults of one kind, and the first few, named (offsets as ranges)."""

    count: int = 0
    examples: list[str] = field(default_factory=list)

    def add(self, what: str, count: int = 1) -> None:
        self.count += count
        if len(self.examples) < EXAMPLES:
            self.examples.append(what)

    def __bool__(self) -> bool:
        return self.count > 0


@dataclass
class Audit:
    """What the audit found; ``ok`` when nothing is missing, repeated, stray or abandoned."""

    sections: int = 0
    events: int = 0
    restarts: int = 0
    missing: Faults = field(default_factory=Faults)  # offsets never recorded: "run:first..last"
    repeated: Faults = field(default_factory=Faults)  # offsets recorded again: "run:offset"
    stray: Faults = field(default_factory=Faults)  # records outside their section
    abandoned: Faults = field(default_factory=Faults)  # sections left before their end

    @property
    def ok(self) -> bool:
        return not (self.missing or self.repeated or self.stray or self.abandoned)


def audit(records: Iterable[Record]) -> Audit:
    """Check each section: offsets 0, 1, 2, ... exactly once, in order, to its end.

    Every section but the last must be finished: moving on to a new run
    before that would silently drop the rest of the old one. Runs folded into
    a ``totals`` record by compaction were audited then; their counts carry over.
    A gap is counted, never listed offset by offset: one damaged offset can be huge.
    """
    result = Audit()
    run_id: str | None = None
    expected = 0
    finished = True
    for record in records:
        if isinstance(record, Totals):
            _carry(result, record)
            continue
        if isinstance(record, Section):
            if not finished:
                result.abandoned.add(f"{run_id} at offset {expected}")
            result.sections += 1
            run_id, expected, finished = record.run_id, 0, False
            continue
        if record.run_id != run_id:
            result.stray.add(f"{record.KIND} for run {record.run_id} outside its section")
            continue
        finished = finished or finishes_run(record)
        if isinstance(record, Resume):
            result.restarts += 1
        if not isinstance(record, Event):
            continue
        result.events += 1
        if record.offset < expected:
            result.repeated.add(f"{run_id}:{record.offset}")
        elif record.offset > expected:
            last = record.offset - 1
            span = f"{expected}" if last == expected else f"{expected}..{last}"
            result.missing.add(f"{run_id}:{span}", record.offset - expected)
        expected = max(expected, record.offset + 1)
    return result


def _carry(result: Audit, totals: Totals) -> None:
    result.sections += totals.runs
    result.events += totals.events
    result.restarts += totals.restarts
    for count, into in (
        (totals.missing, result.missing),
        (totals.repeated, result.repeated),
        (totals.abandoned, result.abandoned),
        (totals.stray, result.stray),
    ):
        if count:
            into.add(f"{count} in runs compacted since {totals.since}", count)
