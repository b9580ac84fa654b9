"""The subscriber's ledger: what it processed and where to resume, in one file.

Each processed event is one JSON line, appended with a single ``write`` and
``fsync``\\ ed before the next event is read. The resume offset is not stored
anywhere else: it is the offset of the last complete line plus one. So the
ledger and the position cannot disagree, whatever instant the process dies.

Records (``kind``):

* ``section``: the subscriber attached to a new pipeline run; offsets below
  belong to that ``run_id`` only.
* ``resume``: the subscriber attached to the open section at ``next_offset``,
  on start or after a lost connection. Chaos tools read these as the seams.
* ``event``: one stream item, with its ``offset`` and ``stage``.
* ``end``: the run closed without its terminal event (terminated, say).

A line torn by a kill mid-write (no trailing newline) is cut off on open, with
a warning. Anything else that does not parse is refused: we never guess a
position, and never silently start again from offset 0.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.shared.models import FINAL_STAGE

RESET_HINT = "make reset-subscriber"
_REQUIRED: dict[str, dict[str, type]] = {
    "section": {"workflow_id": str, "run_id": str},
    "resume": {"workflow_id": str, "run_id": str, "next_offset": int},
    "event": {"workflow_id": str, "run_id": str, "offset": int, "stage": str},
    "end": {"workflow_id": str, "run_id": str, "status": str},
}


class LedgerError(Exception):
    """The ledger cannot be used as it is; the message names the file and the fix."""


@dataclass(frozen=True)
class Position:
    """Where the subscriber stands in the last section of the ledger."""

    workflow_id: str
    run_id: str
    next_offset: int
    finished: bool  # the terminal event (or an end record) is in the ledger


def now() -> str:
    """Timestamp for records: ISO 8601, UTC, milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def parse(text: str, source: str) -> list[dict[str, Any]]:
    """Complete lines of ``text`` as records; raise LedgerError naming the bad line."""
    records: list[dict[str, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        problem = _problem(line)
        if problem is None:
            records.append(json.loads(line))
            continue
        raise LedgerError(
            f"{source} line {number} is not a ledger record ({problem}). The ledger is the "
            f"subscriber's resume position, so it will not guess one: inspect the file, "
            f"or discard it and start over with `{RESET_HINT}`."
        )
    return records


def _problem(line: str) -> str | None:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        return f"invalid JSON: {err.msg} at column {err.colno}"
    if not isinstance(record, dict):
        return "not a JSON object"
    required = _REQUIRED.get(record.get("kind", ""))
    if required is None:
        return f"unknown kind {record.get('kind')!r}; expected one of {', '.join(_REQUIRED)}"
    for key, kind in required.items():
        value = record.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            return f"field {key!r} missing or not a {kind.__name__}"
    return None


def position(records: Iterable[dict[str, Any]]) -> Position | None:
    """The resume position implied by ``records``, or None for an empty ledger."""
    current: Position | None = None
    for record in records:
        kind = record["kind"]
        if kind == "section":
            current = Position(record["workflow_id"], record["run_id"], 0, finished=False)
        elif current is None or record["run_id"] != current.run_id:
            continue  # audit() reports records outside their section
        elif kind == "event":
            current = Position(
                current.workflow_id,
                current.run_id,
                record["offset"] + 1,
                finished=record["stage"] == FINAL_STAGE,
            )
        elif kind == "end":
            current = Position(current.workflow_id, current.run_id, current.next_offset, True)
    return current


class Ledger:
    """Append-only JSON-lines ledger at ``path``; see the module docstring."""

    def __init__(self, path: Path, records: list[dict[str, Any]], repaired: int) -> None:
        self.path = path
        self.records = records
        self.repaired_bytes = repaired
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    @classmethod
    def open(cls, path: Path) -> Ledger:
        """Open (creating if needed), cut a torn last line, and validate every record."""
        _require_writable(path)
        data = path.read_bytes() if path.exists() else b""
        complete_end = data.rfind(b"\n") + 1
        torn = len(data) - complete_end
        if torn:
            os.truncate(path, complete_end)  # the kill-mid-write case: drop the partial line
        text = data[:complete_end].decode("utf-8", errors="replace")
        return cls(path, parse(text, str(path)), torn)

    @property
    def position(self) -> Position | None:
        return position(self.records)

    def append(self, kind: str, **fields: Any) -> dict[str, Any]:
        """Write one record durably: a single write of the whole line, then fsync."""
        record = {"kind": kind, **fields, "at": now()}
        line = (json.dumps(record, separators=(",", ":")) + "\n").encode()
        os.write(self._fd, line)
        os.fsync(self._fd)
        self.records.append(record)
        return record

    def close(self) -> None:
        os.close(self._fd)


def _require_writable(path: Path) -> None:
    directory = path.parent
    if not directory.is_dir():
        raise LedgerError(
            f"ledger directory {directory} does not exist; mount a writable volume there "
            f"or set LEDGER_PATH to a file in a writable directory"
        )
    if not os.access(directory, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise LedgerError(
            f"ledger {path} is not writable by uid {os.getuid()}; give that user the "
            f"directory (the compose volume does this) or set LEDGER_PATH elsewhere"
        )


@dataclass
class Audit:
    """Every offset of every section, checked: nothing missing, nothing repeated."""

    sections: int = 0
    events: int = 0
    restarts: int = 0
    missing: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    stray: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)  # sections left before their end

    @property
    def ok(self) -> bool:
        return not (self.missing or self.repeated or self.stray or self.abandoned)


def audit(records: Iterable[dict[str, Any]]) -> Audit:
    """Check each section: offsets 0, 1, 2, ... exactly once, in order, to its end.

    Every section but the last must be finished (terminal event or ``end``
    record): moving on to a new run before that would silently drop the
    rest of the old one.
    """
    result = Audit()
    run_id: str | None = None
    expected = 0
    finished = True
    for record in records:
        kind = record["kind"]
        if kind == "section":
            if not finished:
                result.abandoned.append(f"{run_id} at offset {expected}")
            result.sections += 1
            run_id, expected, finished = record["run_id"], 0, False
            continue
        if record["run_id"] != run_id:
            result.stray.append(f"{kind} for run {record['run_id']} outside its section")
            continue
        if kind == "resume":
            result.restarts += 1
        if kind == "end":
            finished = True
        if kind != "event":
            continue
        finished = record["stage"] == FINAL_STAGE
        result.events += 1
        offset = record["offset"]
        if offset < expected:
            result.repeated.append(f"{run_id}:{offset}")
        elif offset > expected:
            result.missing.extend(f"{run_id}:{o}" for o in range(expected, offset))
        expected = max(expected, offset + 1)
    return result
