"""The ledger: resume position, torn-line repair, refusal of corruption, the audit."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from services.shared.ledger import RESET_HINT, Ledger, LedgerError, audit, position


def _fill(ledger: Ledger, run_id: str, offsets: list[int], *, final: bool = False) -> None:
    ledger.append("section", workflow_id="wf", run_id=run_id)
    for offset in offsets:
        ledger.append("event", workflow_id="wf", run_id=run_id, offset=offset, stage="validating")
    if final:
        ledger.append(
            "event", workflow_id="wf", run_id=run_id, offset=len(offsets), stage="complete"
        )


def test_position_is_the_last_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path)
    assert ledger.position is None
    _fill(ledger, "r1", [0, 1, 2], final=True)
    _fill(ledger, "r2", [0, 1])
    ledger.close()
    reopened = Ledger.open(path)
    assert reopened.position is not None
    assert (reopened.position.run_id, reopened.position.next_offset) == ("r2", 2)
    assert not reopened.position.finished


def test_torn_last_line_is_cut_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path)
    _fill(ledger, "r1", [0, 1])
    ledger.close()
    with path.open("a") as f:
        f.write('{"kind":"event","workflow_id":"wf","run_id":"r1","off')  # killed mid-write
    reopened = Ledger.open(path)
    assert reopened.repaired_bytes > 0
    assert reopened.position is not None and reopened.position.next_offset == 2
    assert path.read_text().endswith("\n")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json at all", "invalid JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"kind": "gossip"}', "unknown kind"),
        (
            '{"kind": "event", "workflow_id": "wf", "run_id": "r1", "offset": "3", "stage": "x"}',
            "'offset' missing or not a int",
        ),
    ],
)
def test_corruption_is_refused_with_the_fix(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path)
    _fill(ledger, "r1", [0])
    ledger.close()
    with path.open("a") as f:
        f.write(line + "\n")
    before = path.read_bytes()
    with pytest.raises(LedgerError) as caught:
        Ledger.open(path)
    message = str(caught.value)
    assert str(path) in message and "line 3" in message and problem in message
    assert RESET_HINT in message
    assert path.read_bytes() == before  # refused, not "repaired": nothing is lost


@pytest.mark.skipif(os.getuid() == 0, reason="root can write anywhere")
def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(LedgerError, match="not writable"):
            Ledger.open(tmp_path / "events.jsonl")
    finally:
        tmp_path.chmod(0o700)


def test_missing_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="does not exist"):
        Ledger.open(tmp_path / "absent" / "events.jsonl")


def test_audit_passes_a_clean_ledger_and_catches_every_fault(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "events.jsonl")
    _fill(ledger, "r1", [0, 1, 2], final=True)
    _fill(ledger, "r2", [0, 1])
    clean = audit(ledger.records)
    assert clean.ok and (clean.sections, clean.events) == (2, 6)

    ledger.append("event", workflow_id="wf", run_id="r2", offset=1, stage="x")  # repeat
    ledger.append("event", workflow_id="wf", run_id="r2", offset=4, stage="x")  # skips 2, 3
    ledger.append("event", workflow_id="wf", run_id="r1", offset=9, stage="x")  # wrong run
    faulty = audit(ledger.records)
    assert not faulty.ok
    assert faulty.repeated == ["r2:1"]
    assert faulty.missing == ["r2:2", "r2:3"]
    assert len(faulty.stray) == 1


def test_audit_catches_a_run_left_before_its_end(tmp_path: Path) -> None:
    ledger = Ledger.open(tmp_path / "events.jsonl")
    _fill(ledger, "r1", [0, 1])  # never reaches "complete"
    _fill(ledger, "r2", [0, 1])
    result = audit(ledger.records)
    assert not result.ok and result.abandoned == ["r1 at offset 2"]
    ledger.append("end", workflow_id="wf", run_id="r2", status="TERMINATED")
    _fill(ledger, "r3", [0])
    assert audit(ledger.records).abandoned == ["r1 at offset 2"]  # r2's end record counts


def test_an_end_record_finishes_a_run() -> None:
    records = [
        {"kind": "section", "workflow_id": "wf", "run_id": "r1"},
        {"kind": "end", "workflow_id": "wf", "run_id": "r1", "status": "TERMINATED"},
    ]
    current = position(records)
    assert current is not None and current.finished
    assert json.dumps(records)  # records are plain JSON
