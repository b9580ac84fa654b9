"""Reading a ledger: strict parsing, and loading one from outside the writer.

Only complete lines count. A last line without its newline was torn by a
kill mid-write: a reader ignores it, and the writer cuts it on open. Any
other damage raises :class:`LedgerError`, naming the file, the line and the
fix, because the ledger is the subscriber's resume position.
"""

from __future__ import annotations

from pathlib import Path

from services.shared.ledger.records import Record, decode

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


def load(path: Path) -> list[Record] | None:
    """The records of the ledger at ``path``, read without its lock; None while it is absent.

    The one way to read a ledger from outside: bytes, complete lines only.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return parse(data, str(path))
