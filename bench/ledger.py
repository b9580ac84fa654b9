"""The subscriber's ledger after months: open time and memory, compacted against not.

Real ledgers are written through the real ``Ledger`` (one write and one fsync
per run's batch, as a subscriber catching up writes them), for a growing
number of pipeline runs of the default size (61 events). The baseline is the
same code with compaction switched off (``keep_runs`` larger than any run
count), which is what the ledger did before it compacted: every record ever
written, read back on every start.

Run alone with ``python -m bench.ledger``; ``make bench`` includes it.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

from services.shared.ledger import Event, Ledger, Resume, Section
from services.shared.models import FINAL_STAGE, WORK_STAGES

STEPS = 12  # events per stage, as the pipeline's default
RUNS_PER_YEAR = 365 * 24 * 30  # a run every two minutes
KEEP_RUNS = 20  # LEDGER_KEEP_RUNS's default
NO_COMPACTION = 10**9


@dataclass(frozen=True)
class Opening:
    runs: int
    compacted: bool
    file_bytes: int
    open_ms: float  # median of five opens
    peak_kib: float  # Python allocations while opening


def _write_runs(path: Path, runs: int, keep_runs: int) -> None:
    ledger = Ledger.open(path, keep_runs=keep_runs)
    try:
        for run in range(runs):
            run_id = f"run-{run:06d}"
            ledger.append(Section("pipeline", run_id), Resume("pipeline", run_id, 0))
            events = [
                Event("pipeline", run_id, stage * STEPS + step, name, step + 1, STEPS)
                for stage, name in enumerate(WORK_STAGES)
                for step in range(STEPS)
            ]
            events.append(Event("pipeline", run_id, len(events), FINAL_STAGE, 1, 1))
            ledger.append(*events)
    finally:
        ledger.close()


def _open(path: Path, keep_runs: int, runs: int) -> Opening:
    times = []
    for _ in range(5):
        began = time.perf_counter()
        Ledger.open(path, keep_runs=keep_runs).close()
        times.append(time.perf_counter() - began)
    tracemalloc.start()
    Ledger.open(path, keep_runs=keep_runs).close()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return Opening(
        runs=runs,
        compacted=keep_runs != NO_COMPACTION,
        file_bytes=path.stat().st_size,
        open_ms=statistics.median(times) * 1000,
        peak_kib=peak / 1024,
    )


def measure(run_counts: tuple[int, ...] = (100, 500, 2000)) -> list[Opening]:
    """Open time and memory of ledgers holding ``run_counts`` runs, both designs."""
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for keep_runs in (NO_COMPACTION, KEEP_RUNS):
            for runs in run_counts:
                path = Path(tmp) / f"events-{keep_runs}-{runs}.jsonl"
                _write_runs(path, runs, keep_runs)
                results.append(_open(path, keep_runs, runs))
    return results


def table(results: list[Opening]) -> list[str]:
    """The figures as printable lines, with a year extrapolated for the baseline."""
    lines = [
        f"{'design':<26} {'runs':>6} {'file':>10} {'open':>9} {'memory':>10}",
    ]
    for r in results:
        design = f"compacted (keep {KEEP_RUNS})" if r.compacted else "every record (before)"
        lines.append(
            f"{design:<26} {r.runs:>6,} {r.file_bytes / 1e6:>8.2f}MB {r.open_ms:>7.1f}ms "
            f"{r.peak_kib / 1024:>8.1f}MB"
        )
    baseline = [r for r in results if not r.compacted]
    if baseline:
        last = baseline[-1]
        scale = RUNS_PER_YEAR / last.runs
        lines.append(
            f"{'every record, a year':<26} {RUNS_PER_YEAR:>6,} "
            f"{last.file_bytes * scale / 1e9:>8.2f}GB {last.open_ms * scale / 1000:>8.1f}s "
            f"{last.peak_kib * scale / 1024**2:>8.1f}GB   (extrapolated, linear)"
        )
    return lines


def main() -> None:
    for line in table(measure()):
        print(f"bench: ledger  {line}")


if __name__ == "__main__":
    main()
