"""The subscriber's ledger file: what it processed and where to resume, in one place.

Processed events are appended as JSON lines (``records``) and fsynced before
the subscriber reads on, one write and one fsync per delivered batch. The
resume position is not stored anywhere else: it is the offset of the last
complete event line plus one, so the ledger and the position cannot disagree
whatever instant the process dies.

Only one process may write a ledger: ``open`` takes an exclusive lock on a
sidecar ``.lock`` file (which names its holder) and refuses if another
process has it. The file stays small for months: once it holds twice
``keep_runs`` finished runs in full, the oldest are folded into one
``totals`` record (audited as they are folded) so that ``keep_runs`` remain,
in a copy that replaces the file atomically. Folding in bulk keeps the cost
of rewriting to one copy every ``keep_runs`` runs. A copy left behind (a kill
or a full disk mid-compaction) is never the ledger: it is removed on open.
"""

from __future__ import annotations

import errno
import fcntl
import os
import socket
from contextlib import suppress
from pathlib import Path

from services.shared.ledger.audit import audit
from services.shared.ledger.reading import LedgerError, complete_part, parse
from services.shared.ledger.records import (
    Position,
    Record,
    Section,
    Totals,
    advance,
    encode,
    finishes_run,
    now,
)


class LedgerBusy(LedgerError):
    """Another process holds the ledger's lock."""


class Ledger:
    """An open, locked ledger; see the module docstring."""

    def __init__(self, path: Path, *, keep_runs: int) -> None:
        """Use :meth:`open`."""
        self.path = path
        self.keep_runs = keep_runs
        self.position: Position | None = None
        self.finished_runs = 0  # every finished run, compacted ones included
        self.repaired_bytes = 0  # a torn last line cut on open
        self._kept_finished = 0  # finished runs still kept in full in the file
        self._lock = -1
        self._fd = -1

    @classmethod
    def open(cls, path: Path, *, keep_runs: int = 20) -> Ledger:
        """Lock, open (creating if needed), cut a torn last line, validate every record."""
        ledger = cls(path, keep_runs=keep_runs)
        _require_writable(path)
        ledger._lock = _acquire(path.with_name(path.name + ".lock"))
        try:
            ledger._load()
        except BaseException:
            ledger.close()
            raise
        return ledger

    def _load(self) -> None:
        created = not self.path.exists()
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            _fsync_directory(self.path.parent)  # the new name itself must survive a crash
        self._copy().unlink(missing_ok=True)  # a compaction that never replaced the file
        data = self.path.read_bytes()
        complete = complete_part(data)
        # Validate first: a file damaged elsewhere is refused as it is, torn tail and all.
        records = parse(complete, str(self.path))
        self.repaired_bytes = len(data) - len(complete)
        if self.repaired_bytes:  # the kill-mid-write case: drop the partial line
            os.ftruncate(self._fd, len(complete))
            os.fsync(self._fd)
        for record in records:
            self._account(record)

    def _copy(self) -> Path:
        """Where compaction writes the file's replacement."""
        return self.path.with_name(self.path.name + ".compacting")

    def _account(self, record: Record) -> None:
        was_finished = self.position is not None and self.position.finished
        self.position = advance(self.position, record)
        if isinstance(record, Totals):
            self.finished_runs += record.runs
        elif finishes_run(record) and not was_finished:
            self.finished_runs += 1
            self._kept_finished += 1

    def append(self, *records: Record) -> None:
        """Write ``records`` (one, or a delivered batch): one write and one fsync, or nothing."""
        if not records:
            return
        _write_whole(self._fd, b"".join(encode(r) for r in records), self.path)
        for record in records:
            self._account(record)
        if self._kept_finished >= 2 * self.keep_runs:
            self._compact()

    def _compact(self) -> None:
        """Fold the oldest finished runs into ``totals`` so that ``keep_runs`` remain."""
        records = parse(self.path.read_bytes(), str(self.path))
        starts = [i for i, r in enumerate(records) if isinstance(r, Section)]
        fold = self._kept_finished - self.keep_runs
        cut = starts[fold] if fold < len(starts) else len(records)
        folded, kept = records[:cut], records[cut:]
        result = audit(folded)
        previous = [r for r in folded if isinstance(r, Totals)]
        totals = Totals(
            runs=result.sections,
            events=result.events,
            restarts=result.restarts,
            missing=result.missing.count,
            repeated=result.repeated.count,
            abandoned=result.abandoned.count,
            stray=result.stray.count,
            since=previous[0].since if previous else _first_at(folded),
        )
        replacement = self._copy()
        try:
            with replacement.open("wb") as out:
                out.write(b"".join(encode(r) for r in [totals, *kept]))
                out.flush()
                os.fsync(out.fileno())
        except OSError as err:
            with suppress(OSError):
                replacement.unlink()
            raise LedgerError(
                f"could not compact ledger {self.path} ({err.strerror or err}): the ledger "
                f"itself is whole and holds every record; free space on its volume and restart."
            ) from err
        replacement.replace(self.path)
        _fsync_directory(self.path.parent)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_RDWR | os.O_APPEND)
        self._kept_finished = sum(1 for r in kept if finishes_run(r))

    def close(self) -> None:
        """Close the file and release the lock."""
        for fd in (self._fd, self._lock):
            if fd >= 0:
                os.close(fd)  # closing the lock file's descriptor releases the flock
        self._fd = self._lock = -1


def _write_whole(fd: int, data: bytes, path: Path) -> None:
    """Append all of ``data`` and fsync; on failure cut back to where it started.

    A short write (a full disk, a file-size limit) would otherwise leave half
    a line that every later start refuses.
    """
    start = os.fstat(fd).st_size
    written = 0
    try:
        while written < len(data):
            n = os.write(fd, data[written:])
            if n == 0:
                raise OSError(errno.EIO, "write made no progress")
            written += n
        os.fsync(fd)
    except OSError as err:
        with suppress(OSError):
            os.ftruncate(fd, start)
            os.fsync(fd)
        raise LedgerError(
            f"could not append to ledger {path} ({err.strerror or err}; {written} of "
            f"{len(data)} bytes written): the partial write was cut, so the ledger ends "
            f"at its last complete record. Free space on its volume and restart."
        ) from err


def _first_at(records: list[Record]) -> str:
    return records[0].at if records else now()


def _acquire(lock_path: Path) -> int:
    """Take the exclusive lock, writing who holds it; LedgerBusy names the holder."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
        os.close(fd)
        raise LedgerBusy(
            f"ledger {lock_path.with_suffix('')} is in use by {holder}; only one subscriber "
            f"may write it. Stop the other one (`docker compose ps subscriber`), or give "
            f"this one its own LEDGER_PATH."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on host {socket.gethostname()} since {now()}\n".encode(), 0)
    return fd


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
