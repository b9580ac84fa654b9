"""Kill the subscriber, bring it back, and check what it recorded.

Works against anything that can kill, start and read the subscriber's
ledger: the compose service (``chaos.engine``) or an OS process (tests).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from services.shared.ledger import Audit, Event, Record, Resume, audit, load
from testkit.waiting import wait_until


class Subscriber(Protocol):
    """What the chaos routines need from a subscriber, wherever it runs."""

    def kill(self) -> None:
        """SIGKILL it: no handler runs, no buffer is flushed."""

    def start(self) -> None:
        """Start it again with the same ledger."""

    @property
    def ledger(self) -> Path:
        """Where its ledger is, readable from here."""


@dataclass(frozen=True)
class Kill:
    """One kill and what the subscriber did next, as its own ledger tells it."""

    last_before: int | None  # last offset recorded before the kill
    resumed_at: int  # next_offset of the first resume record written after the kill
    first_after: int  # first offset recorded after that resume record
    new_run: bool  # the first event after belongs to another run than the last before
    resumed_after_s: float  # from the kill until that first event was seen in the ledger

    @property
    def seamless(self) -> bool:
        """It resumed exactly after its last event: nothing skipped, nothing again."""
        expected = 0 if self.last_before is None else self.last_before + 1
        return self.new_run or self.resumed_at == self.first_after == expected


@dataclass
class Report:
    kills: list[Kill] = field(default_factory=list)
    audit: Audit = field(default_factory=Audit)

    @property
    def ok(self) -> bool:
        return self.audit.ok and all(k.seamless for k in self.kills)


def _events(records: list[Record]) -> list[Event]:
    return [r for r in records if isinstance(r, Event)]


def read(subscriber: Subscriber) -> list[Record] | None:
    """Parsed ledger, or None while it does not exist or cannot be read."""
    try:
        return load(subscriber.ledger)  # a damaged ledger is a finding: let LedgerError out
    except OSError:
        return None


def audit_ledger(subscriber: Subscriber) -> Audit:
    """The audit of the whole ledger as it stands now."""
    return audit(read(subscriber) or [])


def wait_for(
    subscriber: Subscriber,
    done: Callable[[list[Record]], bool],
    *,
    what: str,
    timeout: float,
    poll: float = 0.2,
) -> list[Record]:
    """Poll the ledger until ``done`` holds; raise TimeoutError naming ``what``."""
    found: list[list[Record]] = []

    def check() -> bool:
        records = read(subscriber)
        if records is not None and done(records):
            found.append(records)
            return True
        return False

    wait_until(check, what=what, within=timeout, interval=poll)
    return found[0]


def _after(records: list[Record], mark: Record | None) -> list[Record]:
    """The records written after ``mark`` (all of them when there is no mark).

    Records are found by value, not index, so this holds even if the
    subscriber compacted its ledger in between.
    """
    if mark is None:
        return records
    for index in range(len(records) - 1, -1, -1):
        if records[index] == mark:
            return records[index + 1 :]
    return []


def _resumed(records: list[Record], mark: Record | None) -> tuple[Resume, Event] | None:
    """The first resume record after ``mark`` and the first event after that one."""
    later = _after(records, mark)
    seam = next((i for i, r in enumerate(later) if isinstance(r, Resume)), None)
    if seam is None:
        return None
    event = next((r for r in later[seam:] if isinstance(r, Event)), None)
    resume = later[seam]
    return (resume, event) if event is not None and isinstance(resume, Resume) else None


def kill_and_resume(
    subscriber: Subscriber,
    *,
    down_s: float,
    delay_s: float = 0.0,
    right_after_event: bool = False,
    timeout: float = 120.0,
    say: Callable[[str], None] = print,
) -> Kill:
    """Kill mid-stream, keep it down ``down_s``, restart, wait for its next event.

    Before and after are told apart by the ledger alone: what it held once
    the process was dead, then the resume record the restarted process wrote.
    No clock of the subscriber's is compared with ours.
    """
    first = wait_for(subscriber, lambda r: bool(_events(r)), what="a first event", timeout=timeout)
    seen = len(_events(first))
    if right_after_event:
        # Kill within a poll interval of a fresh fsync: the most delicate instant.
        wait_for(
            subscriber,
            lambda r: len(_events(r)) > seen,
            what="a new event",
            timeout=timeout,
            poll=0.05,
        )
    elif delay_s:
        time.sleep(delay_s)
    subscriber.kill()
    killed = time.monotonic()
    say(f"killed the subscriber (SIGKILL); keeping it down {down_s:.1f} s")
    at_kill = wait_for(subscriber, lambda r: True, what="the ledger after the kill", timeout=30)
    mark = at_kill[-1] if at_kill else None
    before = _events(at_kill)
    time.sleep(max(0.0, down_s - (time.monotonic() - killed)))
    subscriber.start()
    records = wait_for(
        subscriber,
        lambda r: _resumed(r, mark) is not None,
        what="the first event after the restart",
        timeout=timeout,
    )
    resumed_after_s = time.monotonic() - killed
    seam = _resumed(records, mark)
    if seam is None:  # wait_for returns only once it is there
        raise RuntimeError("resume record vanished from the ledger")
    resume, after = seam
    last_before = before[-1] if before else None
    kill = Kill(
        last_before=last_before.offset if last_before else None,
        resumed_at=resume.next_offset,
        first_after=after.offset,
        new_run=last_before is None or after.run_id != last_before.run_id,
        resumed_after_s=resumed_after_s,
    )
    say(
        f"last offset before the kill {kill.last_before}, resumed at {kill.resumed_at}, "
        f"first after {kill.first_after}{' (a new pipeline run)' if kill.new_run else ''}; "
        f"resumed {kill.resumed_after_s:.1f} s after the kill"
    )
    return kill


def soak(
    subscriber: Subscriber,
    kills: int,
    *,
    rng: random.Random,
    max_delay_s: float = 4.0,
    max_down_s: float = 3.0,
    say: Callable[[str], None] = print,
) -> Report:
    """``kills`` kills at random instants (a third of them right after an event)."""
    report = Report()
    for number in range(1, kills + 1):
        right_after = rng.random() < 1 / 3
        delay = 0.0 if right_after else rng.uniform(0, max_delay_s)
        down = rng.uniform(0.2, max_down_s)
        when = "right after an event" if right_after else f"after {delay:.1f} s"
        say(f"kill {number}/{kills}: {when}")
        report.kills.append(
            kill_and_resume(
                subscriber, down_s=down, delay_s=delay, right_after_event=right_after, say=say
            )
        )
    report.audit = audit_ledger(subscriber)
    return report


def verdict(report: Report) -> str:
    """One line a person can act on: PASS or FAIL, with the numbers behind it."""
    a = report.audit
    slowest = max((k.resumed_after_s for k in report.kills), default=0.0)
    seams = [k for k in report.kills if not k.seamless]
    head = "PASS" if report.ok else "FAIL"
    line = (
        f"verdict: {head}: kills={len(report.kills)} sections={a.sections} events={a.events} "
        f"missing={a.missing.count} repeated={a.repeated.count} "
        f"slowest kill-to-resumed-event={slowest:.1f}s"
    )
    details = [
        f"missing offsets (run:offsets): {', '.join(a.missing.examples)}" if a.missing else "",
        f"repeated offsets (run:offset): {', '.join(a.repeated.examples)}" if a.repeated else "",
        f"records outside their section: {'; '.join(a.stray.examples)}" if a.stray else "",
        f"runs left before their end: {', '.join(a.abandoned.examples)}" if a.abandoned else "",
        f"resumed at the wrong offset: {seams}" if seams else "",
    ]
    return "\n".join([line, *[d for d in details if d]])
