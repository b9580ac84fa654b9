"""The subscriber's ledger: its processed events and its resume position, in one file.

* ``records``: the typed records and the one rule for "this run is finished";
* ``reading``: strict parsing, and loading a ledger from outside its writer;
* ``summary``: what a dashboard shows of it;
* ``audit``: every offset exactly once, in order, to each run's end;
* ``store``: the locked, crash-safe, self-compacting file the subscriber writes.
"""

from services.shared.ledger.audit import Audit, Faults, audit
from services.shared.ledger.reading import RESET_HINT, LedgerError, load, parse
from services.shared.ledger.records import (
    End,
    Event,
    Position,
    Record,
    Resume,
    Section,
    Totals,
    finishes_run,
)
from services.shared.ledger.store import Ledger, LedgerBusy
from services.shared.ledger.summary import Summary, summarize

__all__ = [
    "RESET_HINT",
    "Audit",
    "End",
    "Event",
    "Faults",
    "Ledger",
    "LedgerBusy",
    "LedgerError",
    "Position",
    "Record",
    "Resume",
    "Section",
    "Summary",
    "Totals",
    "audit",
    "finishes_run",
    "load",
    "parse",
    "summarize",
]
