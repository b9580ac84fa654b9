"""Reading a ledger: strict parsing, and a read-only summary for other processes.

Only complete lines count. A last line without its newline was torn by a
kill mid-write: a reader ignores it, and the writer cuts it on open. Any
other damage raises :class:`LedgerError`, naming the file, the line and the
fix, because the ledger is the subscriber's resume position.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from services.shared.ledger.records import (
    Event,
    Position,
    Record,
    Resume,
    Section,
    Totals,
    advance,
    decode,
)

RESET_HINT = "make reset-subscriber"


class LedgerError(Exception):
    """The ledger cannot be used as it is; the message names the file and the fix."""


def complete_part(data: bytes) -> bytes:
    """``data`` up to and including its last newline."""
    return data[: data.rfind(b"\n") + 1]


def parse(data: bytes | str, source: str) -> list[Record]:
    """Every complete line of ``data`` as a record; LedgerError names a bad one.

    Bytes, not text: a kill can tear a multi-byte character at the tail, and
    only the complete lines are decoded.
    """
    raw = data.encode() if isinstance(data, str) else data
    records: list[Record] = []
    for number, line in enumerate(complete_part(raw).splitlines(), start=1):
        try:
            records.append(decode(line.decode("utf-8")))
        except UnicodeDecodeError as err:
            _refuse(source, number, f"invalid UTF-8 at byte {err.start}")
        except ValueError as err:
            _refuse(source, number, str(err))
    return records


def _refuse(source: str, number: int, problem: str) -> None:
    raise LedgerError(
        f"{source} line {number} is not a ledger record ({problem}). The ledger is the "
        f"subscriber's resume position, so it will not guess one: inspect the file, "
        f"or discard it and start over with `{RESET_HINT}`."
    )


@dataclass(frozen=True)
class Summary:
    """A ledger as it stands, for a dashboard or a report."""

    runs: int  # sections ever started, compacted ones included
    events: int  # events ever recorded, compacted ones included
    position: Position | None
    last_event: Event | None
    resumes: list[Resume]  # the kept ones, oldest first


def load(path: Path) -> list[Record] | None:
    """The records of the ledger at ``path``, read without its lock; None while it is absent.

    The one way to read a ledger from outside: bytes, complete lines only.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse(data, str(path))


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
