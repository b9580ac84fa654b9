"""Kill the subscriber, bring it back, and check what it recorded.

Works against anything that can kill, start and read the subscriber's
ledger: the compose service (``chaos.compose``) or an OS process (tests).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from services.shared.ledger import Audit, audit, parse

Records = list[dict[str, Any]]


class Subscriber(Protocol):
    """What the chaos routines need from a subscriber, wherever it runs."""

    def kill(self) -> None:
        """SIGKILL it: no handler runs, no buffer is flushed."""

    def start(self) -> None:
        """Start it again with the same ledger."""

    def read_ledger(self) -> str:
        """The ledger's text; raises OSError (or RuntimeError) while unreadable."""


@dataclass(frozen=True)
class Kill:
    """One kill and what the subscriber did next."""

    last_before: int | None  # last offset recorded before the kill
    first_after: int  # first offset recorded after the restart
    new_run: bool  # the first event after belongs to a run started after the kill
    resumed_after_s: float  # from the kill to that first recorded event


@dataclass
class Report:
    kills: list[Kill] = field(default_factory=list)
    audit: Audit = field(default_factory=Audit)

    @property
    def ok(self) -> bool:
        return self.audit.ok and all(k.new_run or k.first_after == _next(k) for k in self.kills)


def _next(kill: Kill) -> int:
    return 0 if kill.last_before is None else kill.last_before + 1


def _at(record: dict[str, Any]) -> float:
    return datetime.fromisoformat(record["at"]).timestamp()


def _events(records: Records) -> Records:
    return [r for r in records if r["kind"] == "event"]


def read(subscriber: Subscriber) -> Records | None:
    """Parsed ledger, or None while it cannot be read (container stopped, say)."""
    try:
        text = subscriber.read_ledger()
    except (OSError, RuntimeError):
        return None
    return parse(text, "ledger")  # a damaged ledger is a finding: let LedgerError out


def audit_ledger(subscriber: Subscriber) -> Audit:
    """The audit of the whole ledger as it stands now."""
    return audit(read(subscriber) or [])


def wait_for(
    subscriber: Subscriber,
    done: Callable[[Records], bool],
    *,
    what: str,
    timeout: float,
    poll: float = 0.2,
) -> Records:
    """Poll the ledger until ``done`` holds; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = read(subscriber)
        if records is not None and done(records):
            return records
        time.sleep(poll)
    raise TimeoutError(f"gave up after {timeout:.0f} s waiting for {what}")


def kill_and_resume(
    subscriber: Subscriber,
    *,
    down_s: float,
    delay_s: float = 0.0,
    right_after_event: bool = False,
    timeout: float = 120.0,
    say: Callable[[str], None] = print,
) -> Kill:
    """Kill mid-stream, keep it down ``down_s``, restart, wait for its next event."""
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
    killed_at = time.time()
    say(f"killed the subscriber (SIGKILL); keeping it down {down_s:.1f} s")
    time.sleep(down_s)
    subscriber.start()

    def resumed(records: Records) -> bool:
        return any(r["kind"] == "event" and _at(r) > killed_at for r in records)

    records = wait_for(
        subscriber, resumed, what="the first event after the restart", timeout=timeout
    )
    before = [r for r in _events(records) if _at(r) <= killed_at]
    after = next(r for r in _events(records) if _at(r) > killed_at)
    last_before = before[-1] if before else None
    kill = Kill(
        last_before=last_before["offset"] if last_before else None,
        first_after=after["offset"],
        new_run=last_before is None or after["run_id"] != last_before["run_id"],
        resumed_after_s=_at(after) - killed_at,
    )
    say(
        f"last offset before the kill {kill.last_before}, first after {kill.first_after}"
        f"{' (a new pipeline run)' if kill.new_run else ''}; "
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
    seams = [k for k in report.kills if not k.new_run and k.first_after != _next(k)]
    head = "PASS" if report.ok else "FAIL"
    line = (
        f"verdict: {head}: kills={len(report.kills)} sections={a.sections} events={a.events} "
        f"missing={len(a.missing)} repeated={len(a.repeated)} "
        f"slowest kill-to-resumed-event={slowest:.1f}s"
    )
    details = [
        f"missing offsets (run:offset): {', '.join(a.missing[:10])}" if a.missing else "",
        f"repeated offsets (run:offset): {', '.join(a.repeated[:10])}" if a.repeated else "",
        f"records outside their section: {'; '.join(a.stray[:5])}" if a.stray else "",
        f"runs left before their end: {', '.join(a.abandoned)}" if a.abandoned else "",
        f"resumed at the wrong offset: {seams}" if seams else "",
    ]
    return "\n".join([line, *[d for d in details if d]])
