"""The ledger: resume position, repair and refusal, whole writes, one writer, compaction, audit."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from chaos.subscriber import read
from services.shared.ledger import (
    RESET_HINT,
    End,
    Event,
    Ledger,
    LedgerBusy,
    LedgerError,
    Record,
    Resume,
    Section,
    Totals,
    audit,
    load,
    summarize,
)
from services.shared.models import FINAL_STAGE
from tests.processes import SubscriberProcess

ROOT = Path(__file__).resolve().parent.parent
TORN = b'{"kind":"event","workflow_id":"wf","run_id":"r1","off'  # a line a kill cut short


def _run(ledger: Ledger, run_id: str, offsets: list[int], *, final: bool = False) -> None:
    ledger.append(Section("wf", run_id))
    ledger.append(Resume("wf", run_id, offsets[0] if offsets else 0))
    ledger.append(*[Event("wf", run_id, o, "validating", 1, 1) for o in offsets])
    if final:
        ledger.append(Event("wf", run_id, len(offsets), FINAL_STAGE, 1, 1))


def _records(path: Path) -> list[Record]:
    return load(path) or []


def _written(tmp_path: Path, offsets: list[int], then: bytes) -> Path:
    """A closed ledger of run r1 up to ``offsets``, and then the raw bytes ``then``."""
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path)
    _run(ledger, "r1", offsets)
    ledger.close()
    with path.open("ab") as f:
        f.write(then)
    return path


def test_position_is_the_last_complete_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path)
    assert ledger.position is None
    _run(ledger, "r1", [0, 1, 2], final=True)
    _run(ledger, "r2", [0, 1])
    ledger.close()
    reopened = Ledger.open(path)
    assert reopened.position is not None
    assert (reopened.position.run_id, reopened.position.next_offset) == ("r2", 2)
    assert not reopened.position.finished and reopened.finished_runs == 1
    reopened.close()


def test_torn_last_line_is_cut_and_reported(tmp_path: Path) -> None:
    path = _written(tmp_path, [0, 1], TORN)  # killed mid-write
    reopened = Ledger.open(path)
    assert reopened.repaired_bytes > 0
    assert reopened.position is not None and reopened.position.next_offset == 2
    assert path.read_bytes().endswith(b"\n")
    reopened.close()


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (b"not json at all", b"invalid JSON"),
        (b"[1, 2]", b"not a JSON object"),
        (b'{"kind": "gossip"}', b"unknown kind"),
        (
            b'{"kind":"event","workflow_id":"wf","run_id":"r1","offset":"3","stage":"x",'
            b'"step":1,"steps":1}',
            b"field 'offset' is not a int",
        ),
        (b'{"kind":"section","workflow_id":"wf"}', b"field 'run_id' is missing"),
        # Bytes that are not UTF-8 inside a complete record: damage, not text to replace.
        (b'{"kind":"section","workflow_id":"w\xff","run_id":"r9"}', b"invalid UTF-8"),
    ],
)
def test_damage_is_refused_with_the_fix_and_nothing_rewritten(
    tmp_path: Path, line: bytes, problem: bytes
) -> None:
    path = _written(tmp_path, [0], line + b"\n")
    before = path.read_bytes()
    with pytest.raises(LedgerError) as caught:
        Ledger.open(path)
    message = str(caught.value)
    assert str(path) in message and "line 4" in message and problem.decode() in message
    assert RESET_HINT in message
    assert path.read_bytes() == before  # refused, not "repaired": nothing is lost
    Ledger.open(tmp_path / "other.jsonl").close()  # the refusal released its lock


def _child(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python process of its own, with the ledger's names imported."""
    script = "\n".join(
        [
            "import sys",
            "from pathlib import Path",
            "from services.shared.ledger import Event, Ledger, LedgerError, Section, audit",
            textwrap.dedent(code).strip(),
        ]
    )
    return subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=False
    )


def _in_another_process(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in another process; it must fail with a LedgerError, printed."""
    body = textwrap.indent(textwrap.dedent(code).strip(), "    ")
    handler = "except LedgerError as err:\n    print(type(err).__name__, err)\n    sys.exit(3)"
    done = _child(f"try:\n{body}\n{handler}")
    assert done.returncode == 3, done.stdout + done.stderr
    return done


def test_a_short_write_is_cut_back_and_reported(tmp_path: Path) -> None:
    """A full disk writes part of a line; the ledger must still end at a complete record.

    RLIMIT_FSIZE makes the kernel accept only the bytes below the limit, as a
    full disk would: a real short write, then EFBIG.
    """
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path)
    _run(ledger, "r1", [0, 1])
    ledger.close()
    good = path.read_bytes()
    done = _in_another_process(
        f"""
        import resource, signal
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # get EFBIG, not a kill
        ledger = Ledger.open(Path({str(path)!r}))
        limit = Path({str(path)!r}).stat().st_size + 10
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        ledger.append(*[Event("wf", "r1", o, "validating", 1, 1) for o in (2, 3)])
        """
    )
    assert (
        "LedgerError" in done.stdout and "bytes written" in done.stdout and str(path) in done.stdout
    )
    assert path.read_bytes() == good  # the partial line was cut back
    reopened = Ledger.open(path)
    assert reopened.repaired_bytes == 0
    assert reopened.position is not None and reopened.position.next_offset == 2
    reopened.close()


def test_a_second_writer_is_refused_naming_the_first(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = Ledger.open(path)
    done = _in_another_process(f"Ledger.open(Path({str(path)!r}))")
    assert (
        "LedgerBusy" in done.stdout
        and f"pid {os.getpid()}" in done.stdout
        and "only one subscriber" in done.stdout
    )
    first.close()
    Ledger.open(path).close()  # free again once the first one let go


def test_a_second_writer_in_the_same_process_is_refused_too(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    first = Ledger.open(path)
    with pytest.raises(LedgerBusy):
        Ledger.open(path)
    first.close()


def test_compaction_keeps_the_file_flat_and_the_counts_whole(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path, keep_runs=3)
    for run in range(50):
        _run(ledger, f"r{run}", [0, 1, 2], final=True)
    _run(ledger, "open", [0, 1])
    ledger.close()

    # Folded at 6 finished runs down to 3, again and again: 48 folded, 2 more since.
    records = _records(path)
    sections = [r for r in records if isinstance(r, Section)]
    assert [s.run_id for s in sections] == ["r45", "r46", "r47", "r48", "r49", "open"]
    (totals,) = [r for r in records if isinstance(r, Totals)]
    assert (totals.runs, totals.events, totals.missing, totals.repeated) == (45, 45 * 4, 0, 0)
    assert len(path.read_bytes().splitlines()) == 1 + 5 * 6 + 4  # totals, 5 runs, the open one

    result = audit(_records(path))
    assert result.ok and (result.sections, result.events) == (51, 50 * 4 + 2)
    reopened = Ledger.open(path, keep_runs=3)
    assert reopened.finished_runs == 50
    assert reopened.position is not None and reopened.position.next_offset == 2
    reopened.close()


def test_compaction_carries_a_fault_into_the_totals(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path, keep_runs=1)
    _run(ledger, "r0", [0, 2], final=True)  # offset 1 missing
    _run(ledger, "r1", [0], final=True)  # two finished: r0 is folded
    ledger.close()
    result = audit(_records(path))
    assert not result.ok and result.missing.examples[0].startswith("1 in runs compacted since")


def test_a_second_compaction_keeps_the_first_ones_fault_counts(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path, keep_runs=1)
    _run(ledger, "r0", [0, 5], final=True)  # offsets 1..4 missing: 4 faults
    _run(ledger, "r1", [0], final=True)  # first compaction: r0 folded into totals
    _run(ledger, "r2", [0], final=True)  # second: those totals and r1 folded again
    ledger.close()
    (totals,) = [r for r in _records(path) if isinstance(r, Totals)]
    assert (totals.runs, totals.missing) == (2, 4)
    result = audit(_records(path))
    assert (result.sections, result.missing.count) == (3, 4)


def test_a_huge_gap_is_counted_not_listed(tmp_path: Path) -> None:
    """One damaged offset of 10**15: counted as one range, in a process held to 1 GiB."""
    done = _child(
        """
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (1 << 30, resource.RLIM_INFINITY))
        result = audit([Section("wf", "r1"), Event("wf", "r1", 10**15, "x", 1, 1)])
        print(result.missing.count, result.missing.examples)
        """
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split(" ", 1) == [str(10**15), "['r1:0..999999999999999']\n"]


def test_audit_passes_a_clean_ledger_and_catches_every_fault(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path)
    _run(ledger, "r1", [0, 1, 2], final=True)
    _run(ledger, "r2", [0, 1])
    clean = audit(_records(path))
    assert clean.ok and (clean.sections, clean.events, clean.restarts) == (2, 6, 2)

    ledger.append(Event("wf", "r2", 1, "x", 1, 1))  # repeat
    ledger.append(Event("wf", "r2", 4, "x", 1, 1))  # skips 2, 3
    ledger.append(Event("wf", "r1", 9, "x", 1, 1))  # wrong run
    ledger.close()
    faulty = audit(_records(path))
    assert (faulty.repeated.count, faulty.repeated.examples) == (1, ["r2:1"])
    assert (faulty.missing.count, faulty.missing.examples) == (2, ["r2:2..3"])
    assert faulty.stray.examples == ["event for run r1 outside its section"]
    assert not faulty.ok


def test_a_run_left_before_its_end_is_abandoned_unless_an_end_record_closes_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path)
    _run(ledger, "r1", [0, 1])  # never reaches "complete"
    _run(ledger, "r2", [0, 1])
    ledger.append(End("wf", "r2", "TERMINATED"))
    _run(ledger, "r3", [0])
    assert ledger.finished_runs == 1  # r2, by its end record; never r1
    ledger.close()
    assert audit(_records(path)).abandoned.examples == ["r1 at offset 2"]


def test_summary_reads_what_a_dashboard_shows(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert summarize(path) is None
    ledger = Ledger.open(path, keep_runs=1)
    for run in range(3):
        _run(ledger, f"r{run}", [0], final=True)  # r0 folded at r1's end; r2 stays
    _run(ledger, "r3", [0, 1, 2])
    ledger.close()
    with path.open("ab") as f:
        f.write(b'{"kind":"event"')  # a torn tail is not read, and not refused
    summary = summarize(path)
    assert summary is not None
    assert (summary.runs, summary.events) == (4, 3 * 2 + 3)
    assert summary.last_event is not None and summary.last_event.offset == 2
    assert summary.position is not None and summary.position.run_id == "r3"
    assert [r.run_id for r in summary.resumes] == ["r2", "r3"]  # the kept ones


def test_summary_keeps_the_newest_resumes_and_no_more(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path)
    for run in range(3):
        _run(ledger, f"r{run}", [0], final=True)
    ledger.close()
    for keep, newest in ((0, []), (1, ["r2"]), (2, ["r1", "r2"]), (9, ["r0", "r1", "r2"])):
        summary = summarize(path, resumes=keep)
        assert summary is not None and [r.run_id for r in summary.resumes] == newest


def test_damage_above_a_torn_tail_is_refused_and_the_tail_left_as_it_was(tmp_path: Path) -> None:
    """Refusing means nothing rewritten: the torn tail is not cut before the file is judged."""
    path = _written(tmp_path, [0, 1], b"GARBAGE\n" + TORN)
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="line 5"):
        Ledger.open(path)
    assert path.read_bytes() == before


def test_a_character_torn_at_the_tail_is_read_like_any_torn_line(tmp_path: Path) -> None:
    """A kill can split a multi-byte character; the chaos tools and tests still read the rest."""
    # Killed after the first byte of "ü" (0xc3 0xbc).
    path = _written(tmp_path, [0], '{"kind":"end","run_id":"r1","why":"Zü'.encode()[:-1])
    records = read(SubscriberProcess({}, tmp_path / "s.log", path))
    assert records is not None and [r.KIND for r in records] == ["section", "resume", "event"]
    summary = summarize(path)
    assert summary is not None and summary.events == 1


def test_a_compaction_on_a_full_disk_is_refused_and_leaves_no_copy(tmp_path: Path) -> None:
    """The copy's path points at /dev/full, where every write fails with ENOSPC, as on a
    full volume. The ledger must stay whole, the copy must not be left to fill the disk
    further, and the next compaction (space freed) must work."""
    path = tmp_path / "events.jsonl"
    copy = tmp_path / "events.jsonl.compacting"
    ledger = Ledger.open(path, keep_runs=1)
    _run(ledger, "r0", [0], final=True)
    copy.symlink_to("/dev/full")
    with pytest.raises(LedgerError, match=r"could not compact .* free space"):
        _run(ledger, "r1", [0], final=True)
    assert not copy.is_symlink() and not copy.exists()
    assert [s.run_id for s in _records(path) if isinstance(s, Section)] == ["r0", "r1"]
    _run(ledger, "r2", [0], final=True)  # compacts now
    ledger.close()
    result = audit(_records(path))
    assert result.ok and result.sections == 3 and ledger.finished_runs == 3


def test_a_kill_during_compaction_leaves_the_ledger_whole_and_the_copy_is_removed(
    tmp_path: Path,
) -> None:
    """SIGKILL at the worst instant: the copy is written and fsynced, not yet in place."""
    path = tmp_path / "events.jsonl"
    ledger = Ledger.open(path, keep_runs=1)
    _run(ledger, "r0", [0, 1], final=True)
    ledger.close()
    done = _child(
        f"""
        import os, signal
        from services.shared.models import FINAL_STAGE
        ledger = Ledger.open(Path({str(path)!r}), keep_runs=1)
        Path.replace = lambda self, target: os.kill(os.getpid(), signal.SIGKILL)
        ledger.append(Section("wf", "r1"), Event("wf", "r1", 0, FINAL_STAGE, 1, 1))
        """
    )
    assert done.returncode == -9, done.stderr[-2000:]
    copy = tmp_path / "events.jsonl.compacting"
    assert copy.exists()  # what the kill left behind
    reopened = Ledger.open(path, keep_runs=1)
    assert not copy.exists()
    assert reopened.finished_runs == 2 and reopened.position is not None
    assert reopened.position.run_id == "r1" and reopened.position.finished
    _run(reopened, "r2", [0], final=True)  # and compaction works again
    reopened.close()
    result = audit(_records(path))
    assert result.ok and (result.sections, result.events) == (3, 3 + 1 + 2)


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
