"""python -m bench (make bench): how far one Workflow Stream goes here, and what it costs.

Each figure is measured beside its baseline, in the same run, on the same
dev server: the library's defaults (poll_cooldown 100 ms; a publisher with
batch_interval 2 s and no max_batch_size or flow control), the design
before (one ledger fsync per event), or, for the browser path through the
web service, a direct reader and one subscription per viewer. Prints a
table; writes every figure, and the machine, to bench/results.json.

BENCH_SCALE=0.1 runs a tenth of each load, for a quick look.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

from bench import ledger
from bench.catchup import catch_up
from bench.latency import latency
from bench.report import (
    catch_up_rows,
    latency_rows,
    load_rows,
    machine,
    memory_text,
    sse_rows,
    write_json,
)
from bench.sse import sse
from bench.stack import stack
from bench.throughput import LIBRARY_DEFAULTS, PROJECT, run_load
from services.shared import logs
from services.shared.settings import Settings

RESULTS = Path(__file__).resolve().parent / "results.json"
RATE = 10_000  # events/s in total: the target for one stream
COOLDOWNS = (0.0, 0.01, 0.02, 0.05, 0.1)  # seconds; the library's default is 0.1
LATENCY_RUNS = ((10, 8.0), (100, 4.0))  # (events/s, seconds)


def say(line: str = "") -> None:
    print(f"bench: {line}", flush=True)


async def main() -> None:
    logs.configure("bench", level="warning")  # the figures, not the services' chatter
    scale = float(os.environ.get("BENCH_SCALE", "1"))
    figures: dict[str, Any] = {"machine": machine(), "scale": scale}
    say(f"machine: {figures['machine']['cpu']}, {figures['machine']['cores']} cores")
    chosen = Settings().poll_cooldown_seconds * 1000

    async with stack() as s:
        figures["latency"] = [
            await latency(s, rate=rate, cooldown=cooldown, events=round(rate * seconds))
            for rate, seconds in LATENCY_RUNS
            for cooldown in COOLDOWNS
        ]
        say("publish-to-receive latency, one reader, events published one at a time")
        for row in latency_rows(figures["latency"], chosen):
            say(f"  {row}")

        seconds = 60 * scale
        figures["sustained"] = [
            await run_load(s, design, rate=RATE, seconds=seconds, within=seconds + 180)
            for design in (PROJECT, LIBRARY_DEFAULTS)
        ]
        say(f"one stream, 4 publishers paced to {RATE:,} events/s in all, {seconds:.0f} s")
        for row in load_rows(figures["sustained"]):
            say(f"  {row}")

        each = round(250_000 * scale)
        figures["million"] = [
            await run_load(s, design, rate=RATE, events_each=each, within=each * 4 / RATE * 3 + 180)
            for design in (PROJECT, LIBRARY_DEFAULTS)
        ]
        say(f"{each * 4:,} events through one stream (4 publishers, {RATE:,} events/s in all)")
        for row in load_rows(figures["million"]):
            say(f"  {row}")
        figures["worker_memory"] = s.worker_memory()
        say(f"worker memory at the end: {memory_text(figures['worker_memory'])}")

    figures["catch_up"] = await catch_up(round(100_000 * scale), within=900)
    say("subscriber catching up a backlog, recording each event in its ledger")
    for row in catch_up_rows(figures["catch_up"]):
        say(f"  {row}")

    figures["ledger"] = ledger.measure()
    for row in ledger.table(figures["ledger"]):
        say(f"ledger  {row}")

    figures["sse"] = await sse(scale=scale)
    for row in sse_rows(figures["sse"]):
        say(row)
    write_json(RESULTS, figures)
    say(f"figures written to {RESULTS}")


if __name__ == "__main__":
    asyncio.run(main())
