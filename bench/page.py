"""docs/benchmarks.md's figures, written by `make bench` from what it measured.

The page's prose is written by hand; only the part between the two marker
comments is replaced, with the tables `make bench` printed, the date, the
machine and the command. So no figure on the page is ever retyped.

``python -m bench.page`` rewrites that part from bench/results.json again
(after a quick ``BENCH_SCALE`` run, say, whose figures the bench does not
put on the page by itself).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "benchmarks.md"
RESULTS = ROOT / "bench" / "results.json"
START = "<!-- figures: start (written by make bench from bench/results.json; do not edit) -->"
END = "<!-- figures: end -->"


class PageError(Exception):
    """The page or the results cannot be used; the message says which and why."""


def render(figures: dict[str, Any]) -> str:
    """The figures section: when, where and how it was measured, then every table."""
    m = figures.get("machine")
    tables = figures.get("tables")
    if not isinstance(m, dict) or not isinstance(tables, list):
        raise PageError(
            "these results have no 'machine' or no 'tables'; they come from an older "
            "bench: run `make bench` again"
        )
    minutes = figures.get("minutes")
    took = f", {minutes:.0f} min" if isinstance(minutes, int | float) else ""
    when = datetime.fromisoformat(m["date"]).strftime("%Y-%m-%d %H:%M %Z")
    lines = [
        f"Measured by `{figures.get('command', 'make bench')}` on {when}{took}, "
        f"scale {figures.get('scale', 1)}.",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"Python {m['python']}, temporalio {m['temporalio']}, {m['temporal_cli']}.",
    ]
    for table in tables:
        lines += ["", f"**{table['title']}**", "", "```text", *table["rows"], "```"]
    return "\n".join(lines)


def replace_section(page: str, section: str, *, name: str = "the page") -> str:
    """``page`` with what lies between the markers replaced by ``section``."""
    if page.count(START) != 1 or page.count(END) != 1 or page.index(START) > page.index(END):
        raise PageError(
            f"{name} must hold the marker lines {START!r} and {END!r} once each, in that "
            "order; put them back around the figures section"
        )
    head, rest = page.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{section}\n{END}{tail}"


def write_page(figures: dict[str, Any], page: Path = PAGE) -> None:
    """Rewrite the figures section of ``page`` from ``figures``; the prose stays."""
    page.write_text(replace_section(page.read_text(), render(figures), name=str(page)))


def main() -> int:
    """Rewrite docs/benchmarks.md's figures from bench/results.json."""
    try:
        figures = json.loads(RESULTS.read_text())
        write_page(figures)
    except FileNotFoundError as missing:
        print(f"bench.page: {missing.filename} does not exist; run `make bench` first")
        return 2
    except PageError as refused:
        print(f"bench.page: {refused}")
        return 2
    print(f"bench.page: {PAGE.relative_to(ROOT)} rewritten from {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
