"""The figures as a printed table and as a JSON file, with the machine they ran on."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import subprocess
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

from bench.catchup import CatchUp
from bench.delivery import Delivery
from bench.latency import Latency
from bench.sse import SseFigures
from bench.stack import Memory
from bench.throughput import Throughput
from testkit.devserver import temporal_cli


def machine() -> dict[str, Any]:
    """What the figures depend on: CPU, cores, memory, versions, when."""
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kib = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    cli = subprocess.run([temporal_cli(), "--version"], capture_output=True, text=True, check=False)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 1024**2, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "temporalio": version("temporalio"),
        "temporal_cli": cli.stdout.strip(),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _ms(x: float) -> str:
    return f"{x:,.0f} ms"


def _kib(n: int) -> str:
    return f"{n / 1024:,.0f} KiB"


def _rate(x: float) -> str:
    return "-" if math.isnan(x) else f"{x:,.0f}/s"


def latency_rows(results: list[Latency], chosen_ms: float) -> list[str]:
    rows = [
        f"{'rate':>6} {'cooldown':>9} {'p50':>8} {'p99':>8} {'max':>8} "
        f"{'updates/event':>14} {'history/event':>14}"
    ]
    for r in results:
        mark = {chosen_ms: " <- this project", 100.0: " <- library default"}.get(r.cooldown_ms, "")
        rows.append(
            f"{r.rate:>4.0f}/s {r.cooldown_ms:>6.0f} ms {_ms(r.p50_ms):>8} {_ms(r.p99_ms):>8} "
            f"{_ms(r.max_ms):>8} {r.updates_per_event:>14.2f} {r.history_events_per_event:>14.1f}"
            f"{mark}"
        )
    return rows


def load_rows(results: list[Throughput]) -> list[str]:
    rows = [
        f"{'design':<17} {'published':>10} {'received':>10} {'complete':>8} {'end to end':>11} "
        f"{'rollovers':>9} {'signal':>9} {'poll reply':>10} {'carry':>9} {'history/run':>16} "
        f"task failures"
    ]
    for r in results:
        h = r.history
        per_run = f"{h.events / max(h.runs, 1):,.0f} ev {h.bytes / max(h.runs, 1) / 1e6:.1f} MB"
        complete = "yes" if r.complete else "NO"
        rows.append(
            f"{r.design:<17} {r.published:>10,} {r.received:>10,} {complete:>8} "
            f"{_rate(r.events_per_s):>11} {r.rollovers:>9} {_kib(h.largest_signal):>9} "
            f"{_kib(h.largest_poll_reply):>10} {_kib(h.largest_carry):>9} {per_run:>16} "
            f"{h.task_failures or 'none'}"
        )
        rows.extend(_load_notes(r))
    return rows


def _load_notes(r: Throughput) -> list[str]:
    """What went wrong in a load run, one line each, under its row."""
    notes = []
    if not r.complete:
        notes.append(f"{'':<17} reader: {_why_incomplete(r.reader)}")
    errors = [p["error"] for p in r.publishers if "error" in p]
    if errors:
        notes.append(f"{'':<17} {len(errors)} publishers failed, first: {errors[0][:160]}")
    if r.hub_ended != "running until closed":
        notes.append(f"{'':<17} the hub had ended before it was closed: {r.hub_ended}")
    return notes


def burst_rows(bursts: list[Throughput], paced: Throughput, rate: float) -> list[str]:
    """One publisher's bursts (its own rate and end to end), then paced ones' at ``rate``."""
    rows = [
        f"{'design':<22} {'published':>10} {'complete':>8} {'publisher':>10} {'end to end':>11} "
        f"{'rollovers':>9} task failures"
    ]
    for r in bursts:
        p = r.publishers[0] if r.publishers else {}
        took = p.get("ended", 0) - p.get("began", 0)
        own = r.published / took if took > 0 else math.nan
        rows.append(
            f"{r.design:<22} {r.published:>10,} {'yes' if r.complete else 'NO':>8} "
            f"{_rate(own):>10} {_rate(r.events_per_s):>11} {r.rollovers:>9} "
            f"{r.history.task_failures or 'none'}"
        )
        rows.extend(_load_notes(r))
    rows.append(
        f"{len(paced.publishers)} publishers paced to {rate:,.0f}/s in all, same run: "
        f"{_rate(paced.events_per_s)} end to end"
        f" ({paced.published:,} events, {'complete' if paced.complete else 'NOT complete'})"
    )
    return rows


def _why_incomplete(reader: dict[str, Any]) -> str:
    if "error" in reader:
        return str(reader["error"])
    lost = f"lost {reader.get('lost', 0):,} in {reader.get('jumps', 0)} jumps"
    if "stopped" in reader or reader.get("timed_out"):
        return f"stopped still waiting (the stream stalled?); {lost} before that"
    return f"{lost}, repeated {reader.get('repeated', 0):,}"


def catch_up_rows(c: CatchUp) -> list[str]:
    mem = c.subscriber_memory
    return [
        f"{'design':<34} {'events':>8} {'seconds':>8} {'events/s':>9}",
        f"{'one fsync per batch (subscriber)':<34} {c.events:>8,} {c.batched_seconds:>8.1f} "
        f"{_rate(c.batched_per_s):>9}",
        f"{'one fsync per event (before)':<34} {c.events:>8,} {c.per_event_seconds:>8.1f} "
        f"{_rate(c.per_event_per_s):>9}",
        f"subscriber memory at the end: {memory_text(mem)}",
    ]


def memory_text(m: Memory | None) -> str:
    return "-" if m is None else f"{m.rss_mib:.0f} MiB resident (peak {m.peak_mib:.0f} MiB)"


def worker_memory_row(worker: Memory, restarts: int) -> str:
    """The worker's memory at the end of a benchmark, and whether it had to start again."""
    again = "" if not restarts else f"; it exited and was started again {restarts} times in all"
    return f"worker memory at the end: {memory_text(worker)}{again}"


def load_memory_rows(results: list[Throughput]) -> list[str]:
    """Each design's reader and publishers (processes): resident memory as last seen."""
    return [
        f"{r.design} memory at the end: reader {memory_text(_memory(r.reader))}; "
        f"{len(r.publishers)} publishers, the largest {memory_text(_largest(r.publishers))}"
        for r in results
    ]


def _memory(figures: dict[str, Any]) -> Memory | None:
    m = figures.get("memory")
    return None if m is None else Memory(**m)


def _largest(processes: list[dict[str, Any]]) -> Memory | None:
    seen = [m for m in map(_memory, processes) if m is not None]
    return max(seen, key=lambda m: m.rss_mib, default=None)


def write_json(path: Path, figures: dict[str, Any]) -> None:
    path.write_text(json.dumps(_plain(figures), indent=2) + "\n")


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _plain(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def _lat(x: float) -> str:
    return "-" if math.isnan(x) else _ms(x)


def _delivery_row(name: str, d: Delivery, extra: str = "") -> str:
    complete = f"{d.complete:,} of {d.viewers:,}"
    return (
        f"{name:<28} {_lat(d.p50_ms):>9} {_lat(d.p99_ms):>9} {_lat(d.max_ms):>9} "
        f"{complete:>16}{extra}"
    )


def _failures(d: Delivery) -> list[str]:
    rows = [f"{'':<28} {n:,} failed: {why}" for why, n in d.failed.items()]
    if d.stalled:
        rows.append(f"{'':<28} {d.stalled:,} still waiting when stopped")
    if d.lost or d.repeated:
        rows.append(f"{'':<28} lost {d.lost:,}, repeated {d.repeated:,} events in all")
    return rows


def sse_tables(f: SseFigures) -> list[tuple[str, list[str]]]:
    """The browser path and the many-viewers figures, each beside its baseline, titled."""
    path, naive = f.browser_path, f.naive_bridge
    head = f"{'':<28} {'p50':>9} {'p99':>9} {'max':>9} {'complete':>16}"
    browser = [
        head,
        _delivery_row("SSE viewer through web", path.sse),
        _delivery_row("direct subscribe()", path.direct, "  <- baseline"),
        *_failures(path.sse),
        *_failures(path.direct),
    ]
    fanout = [f"{head} {'events':>7} {'polls in flight':>16}"]
    for many in f.many_viewers:
        extra = f" {many.published:>7,} {many.polls.peak_in_flight:>16,}"
        fanout += [_delivery_row(f"{many.viewers:,} through web (SSE)", many.sse, extra)]
        fanout += _failures(many.sse)
    extra = f" {naive.published:>7,} {naive.polls.peak_in_flight:>16,}  <- baseline"
    fanout += [
        _delivery_row(f"{naive.readers.viewers:,} subscribe(), one each", naive.readers, extra),
        *_failures(naive.readers),
        "where the time goes, event by event: its first viewer, and first to last viewer",
    ]
    for many in f.many_viewers:
        d, cpu = many.sse, many.cpu
        fanout.append(
            f"  {many.viewers:,} viewers: first p50 {_lat(d.first_p50_ms)} p99 "
            f"{_lat(d.first_p99_ms)}; first to last p50 {_lat(d.spread_p50_ms)} p99 "
            f"{_lat(d.spread_p99_ms)}; CPU in cores: web {cpu.web:.2f}, viewer processes "
            f"{sum(cpu.clients):.2f}, machine {cpu.machine:.2f}; web {memory_text(many.web_memory)}"
        )
    polls = ", ".join(f"{m.polls.accepted:,}" for m in f.many_viewers)
    fanout.append(
        f"upstream polls accepted: {polls} (fan-out), {naive.polls.accepted:,} (naive bridge); "
        f"the dev server logged {f.server_errors:,} ERROR lines (to a file, not here)"
    )
    return [
        (
            f"browser path at {path.rate:.0f} events/s, {path.published:,} events "
            "(publish with force_flush to receipt)",
            browser,
        ),
        (
            f"viewers of one stream at {naive.rate:.0f} events/s "
            f"({f.client_processes} viewer processes)",
            fanout,
        ),
    ]
