"""The ledger's records: one typed record per kind, and the one rule for "finished".

On disk each record is one JSON object on one line, ``kind`` first and ``at``
(ISO 8601 UTC) last. Decoding is strict: a line that is not valid UTF-8, not
a JSON object, of an unknown kind, or missing a field of the right type is
damage, and the caller refuses the file rather than guess a position.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any, ClassVar, get_type_hints

from services.shared.models import FINAL_STAGE


def now() -> str:
    """Timestamp for records: ISO 8601, UTC, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class _Stamped:
    """Every record carries when it was written, as its last field on disk."""

    at: str = field(default_factory=now, kw_only=True)


@dataclass(frozen=True)
class _OfRun(_Stamped):
    """A record about one workflow run."""

    workflow_id: str
    run_id: str


@dataclass(frozen=True)
class Section(_OfRun):
    """The subscriber attached to a new pipeline run; offsets below belong to it only."""

    KIND: ClassVar[str] = "section"


@dataclass(frozen=True)
class Resume(_OfRun):
    """The subscriber (re)attached to the open section at ``next_offset``: a seam."""

    KIND: ClassVar[str] = "resume"
    next_offset: int
    why: str = ""


@dataclass(frozen=True)
class Event(_OfRun):
    """One stream item, processed."""

    KIND: ClassVar[str] = "event"
    offset: int
    stage: str
    step: int
    steps: int


@dataclass(frozen=True)
class End(_OfRun):
    """The run closed without its terminal event (terminated, or gone), and why."""

    KIND: ClassVar[str] = "end"
    status: str
    why: str = ""


@dataclass(frozen=True)
class Totals(_Stamped):
    """What compaction folded away: earlier runs, counted and audited."""

    KIND: ClassVar[str] = "totals"
    runs: int
    events: int
    restarts: int
    missing: int
    repeated: int
    abandoned: int
    since: str
    stray: int = 0  # records outside their section (absent in ledgers written before it)


Record = Section | Resume | Event | End | Totals
KINDS: dict[str, type[Record]] = {c.KIND: c for c in (Section, Resume, Event, End, Totals)}


def finishes_run(record: Record) -> bool:
    """The one rule: a run is finished by its terminal event or by an ``end`` record."""
    return isinstance(record, End) or (isinstance(record, Event) and record.stage == FINAL_STAGE)


def encode(record: Record) -> bytes:
    """One line, newline included."""
    body = {"kind": record.KIND, **asdict(record)}
    body["at"] = body.pop("at")  # declared first (a base class), written last
    return (json.dumps(body, separators=(",", ":"), ensure_ascii=False) + "\n").encode()


def decode(line: str) -> Record:
    """The record on ``line``; ValueError says what is wrong with it."""
    try:
        raw = json.loads(line)
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    cls = KINDS.get(raw.get("kind", ""))
    if cls is None:
        raise ValueError(f"unknown kind {raw.get('kind')!r}; expected one of {', '.join(KINDS)}")
    return cls(**_fields(cls, raw))


def _fields(cls: type[Record], raw: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, kind, required in _SPECS[cls]:
        if name not in raw:
            if required:
                raise ValueError(f"field {name!r} is missing")
            continue
        value = raw[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"field {name!r} is not a {kind.__name__}")
        values[name] = value
    return values


def _spec(cls: type[Record]) -> list[tuple[str, type, bool]]:
    """Each field's name, type and whether it must be present."""
    hints = get_type_hints(cls)
    return [
        (f.name, hints[f.name], f.default is MISSING and f.default_factory is MISSING)
        for f in fields(cls)
    ]


_SPECS = {cls: _spec(cls) for cls in KINDS.values()}  # once, not per line read


@dataclass(frozen=True)
class Position:
    """Where a reader of the ledger stands: the last section and its next offset."""

    workflow_id: str
    run_id: str
    next_offset: int
    finished: bool


def advance(position: Position | None, record: Record) -> Position | None:
    """The position after ``record``; records outside the open section change nothing."""
    if isinstance(record, Section):
        return Position(record.workflow_id, record.run_id, 0, finished=False)
    if position is None or isinstance(record, Totals) or record.run_id != position.run_id:
        return position  # the audit reports records outside their section
    next_offset = record.offset + 1 if isinstance(record, Event) else position.next_offset
    return Position(
        position.workflow_id,
        position.run_id,
        next_offset,
        position.finished or finishes_run(record),
    )
