"""python -m bench (make bench): how far one Workflow Stream goes here, and what it costs.

Each figure is measured beside its baseline, in the same run, on the same
dev server: the library's defaults (poll_cooldown 100 ms; a publisher with
batch_interval 2 s and no max_batch_size or flow control), the design
before (one ledger fsync per event), or, for the browser path through the
web service, a direct reader and one subscription per viewer. Prints each
table; writes every figure, the tables, the date, the machine and the
command to bench/results.json, and the tables into docs/benchmarks.md's
figures section (bench/page.py), so the page shows what was measured.

BENCH_SCALE=0.1 runs a tenth of each load, for a quick look; such a run
leaves the page alone (``python -m bench.page`` puts it there if wanted).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bench import ledger, llm, page
from bench.burst import TITLE, bursts
from bench.catchup import catch_up
from bench.edge import edge_bench
from bench.edge_report import edge_tables
from bench.latency import latency
from bench.report import (
    burst_rows,
    catch_up_rows,
    latency_rows,
    load_memory_rows,
    load_rows,
    machine,
    memory_text,
    sse_tables,
    worker_memory_row,
    write_json,
)
from bench.sse import sse
from bench.stack import memory, stack
from bench.throughput import LIBRARY_DEFAULTS, PROJECT, run_load
from services.shared import logs
from services.shared.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results.json"
RATE = 10_000  # events/s in total: the target for one stream
COOLDOWNS = (0.0, 0.01, 0.02, 0.05, 0.1)  # seconds; the library's default is 0.1
LATENCY_RUNS = ((10, 8.0), (100, 4.0))  # (events/s, seconds)


def say(line: str = "") -> None:
    print(f"bench: {line}", flush=True)


def show(figures: dict[str, Any], title: str, rows: Iterable[str]) -> None:
    """Print a titled table and keep it for results.json and the benchmarks page."""
    kept = list(rows)
    say(title)
    for row in kept:
        say(f"  {row}")
    figures["tables"].append({"title": title, "rows": kept})


def command(scale_set: str | None) -> str:
    """How this run was started, as the page should tell a reader to repeat it."""
    how = "make bench" if "MAKELEVEL" in os.environ else "python -m bench"
    return how if scale_set is None else f"BENCH_SCALE={scale_set} {how}"


async def main() -> None:
    logs.configure("bench", level="warning")  # the figures, not the services' chatter
    began = time.monotonic()
    scale_set = os.environ.get("BENCH_SCALE")
    scale = float(scale_set or "1")
    figures: dict[str, Any] = {
        "machine": machine(),
        "command": command(scale_set),
        "scale": scale,
        "tables": [],
    }
    say(f"machine: {figures['machine']['cpu']}, {figures['machine']['cores']} cores")
    chosen = Settings().poll_cooldown_seconds * 1000

    async with stack() as s:
        figures["latency"] = [
            await latency(s, rate=rate, cooldown=cooldown, events=round(rate * seconds))
            for rate, seconds in LATENCY_RUNS
            for cooldown in COOLDOWNS
        ]
        show(
            figures,
            "publish-to-receive latency, one reader, events published one at a time",
            [
                *latency_rows(figures["latency"], chosen),
                worker_memory_row(s.worker_memory(), s.worker_restarts),
                f"bench process (these runs' publisher and reader) memory at the end: "
                f"{memory_text(memory(os.getpid()))}",
            ],
        )

        seconds = 60 * scale
        figures["sustained"] = [
            await run_load(s, design, rate=RATE, seconds=seconds, within=seconds + 180)
            for design in (PROJECT, LIBRARY_DEFAULTS)
        ]
        show(
            figures,
            f"one stream, 4 publishers paced to {RATE:,} events/s in all, {seconds:.0f} s",
            [
                *load_rows(figures["sustained"]),
                worker_memory_row(s.worker_memory(), s.worker_restarts),
                *load_memory_rows(figures["sustained"]),
            ],
        )

        figures["burst"] = await bursts(s, scale)
        show(
            figures,
            TITLE,
            [
                *burst_rows(figures["burst"], figures["sustained"][0], RATE),
                worker_memory_row(s.worker_memory(), s.worker_restarts),
                *load_memory_rows(figures["burst"]),
            ],
        )

        each = round(250_000 * scale)
        figures["million"] = [
            await run_load(s, design, rate=RATE, events_each=each, within=each * 4 / RATE * 3 + 180)
            for design in (PROJECT, LIBRARY_DEFAULTS)
        ]
        figures["worker_memory"] = s.worker_memory()
        show(
            figures,
            f"{each * 4:,} events through one stream (4 publishers, {RATE:,} events/s in all)",
            [
                *load_rows(figures["million"]),
                worker_memory_row(figures["worker_memory"], s.worker_restarts),
                *load_memory_rows(figures["million"]),
            ],
        )

    figures["catch_up"] = await catch_up(round(100_000 * scale), within=900)
    show(
        figures,
        "subscriber catching up a backlog, recording each event in its ledger",
        catch_up_rows(figures["catch_up"]),
    )

    figures["ledger"] = ledger.measure()
    show(figures, "the subscriber's ledger after months", ledger.table(figures["ledger"]))

    figures["sse"] = await sse(scale=scale)
    for title, rows in sse_tables(figures["sse"]):
        show(figures, title, rows)

    figures["edge"] = await edge_bench(scale=scale)
    for title, rows in edge_tables(figures["edge"]):
        show(figures, title, rows)

    answers = await llm.measure()
    figures["llm"] = llm.as_json(answers)
    show(figures, "scenario 5: a model's tokens to a reader, per answer", llm.rows(answers))

    figures["minutes"] = round((time.monotonic() - began) / 60, 1)
    write_json(RESULTS, figures)
    say(f"figures written to {RESULTS}")
    if scale == 1:
        page.write_page(figures)
        say(f"and to {page.PAGE}'s figures section")
    else:
        say(f"BENCH_SCALE={scale_set}: {page.PAGE} left as it was (python -m bench.page)")


if __name__ == "__main__":
    asyncio.run(main())
