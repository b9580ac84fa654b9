"""Reading the services' JSON logs (LOG_FORMAT=json): one object per line."""

from __future__ import annotations

import json
from typing import Any


def parse_lines(text: str, *, source: str) -> list[dict[str, Any]]:
    """Every non-blank line as a JSON object; a line that is not one fails, naming it."""
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise AssertionError(f"{source} line {number} is not JSON: {line!r}") from err
    return records


def events(records: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    """The records whose ``event`` is ``name``."""
    return [r for r in records if r.get("event") == name]
