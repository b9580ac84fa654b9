"""python -m bench.burst: one publisher's unpaced burst, its ``applied`` calls pipelined or not.

The project's publisher keeps DEPTH flow-control calls in flight; before, it
waited for each (depth 1), the baseline here. Each burst has a hub and a
reader of its own (``bench.throughput.run_load`` with one publisher). Run
alone, this also takes the four paced publishers' figure on the same stack,
so the table is read beside it; ``make bench`` prints it after its own.
BENCH_SCALE scales the bursts and the paced run, as for ``make bench``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os

from bench.report import burst_rows
from bench.stack import Stack, stack
from bench.throughput import PROJECT, SYNCHRONOUS, Throughput, run_load
from services.shared import logs
from services.shared.headlines import DEPTH

BURSTS = (20_000, 100_000)  # headlines, before BENCH_SCALE
PIPELINED = dataclasses.replace(PROJECT, name=f"{DEPTH} windows in flight", depth=DEPTH)
TITLE = "one publisher's burst, unpaced, beside four paced publishers"


async def bursts(s: Stack, scale: float) -> list[Throughput]:
    """Each burst size, pipelined then waiting each window, one after the other."""
    out: list[Throughput] = []
    for size in BURSTS:
        events = round(size * scale)
        for design in (PIPELINED, SYNCHRONOUS):
            # Room for the baseline at a quarter of the target rate, and a reader behind.
            within = events / 1000 + 180
            out.append(
                await run_load(s, design, rate=0, events_each=events, within=within, publishers=1)
            )
    return out


async def main() -> None:
    # Here, not above: ``python -m bench`` imports this module from that one.
    from bench.__main__ import RATE

    logs.configure("bench", level="warning")
    scale = float(os.environ.get("BENCH_SCALE") or "1")
    async with stack() as s:
        seconds = 60 * scale
        paced = await run_load(s, PROJECT, rate=RATE, seconds=seconds, within=seconds + 180)
        measured = await bursts(s, scale)
    print(f"bench: {TITLE}")
    for row in burst_rows(measured, paced, RATE):
        print(f"bench:   {row}")


if __name__ == "__main__":
    asyncio.run(main())
