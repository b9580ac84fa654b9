"""Durable Streams offsets for Workflow Streams positions: opaque, URL-safe, sorted as strings.

A Workflow Stream's position is (chain, offset): offsets are global along a
continue-as-new chain, and a new chain under the same workflow id starts at
0 again. The protocol compares offsets as strings (``"10" < "9"``), so both
numbers are zero-padded, and the chain's start time leads, so that a later
chain of the same workflow id sorts after every offset of an earlier one:

    <chain start, µs since the epoch, 16 digits>_<next offset, 16 digits>_<chain id>

e.g. ``1764620000123456_0000000000000042_01a214a6-7e73-734f-8c4d-68fe7c9b80d9``.
The token names the *next* event to read (the protocol's Stream-Next-Offset),
never ``-1`` or ``now``, and contains none of ``, & = ? /``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

_DIGITS = 16
_TOKEN = re.compile(
    rf"^(?P<epoch>[0-9]{{{_DIGITS}}})_(?P<offset>[0-9]{{{_DIGITS}}})_(?P<chain>[0-9A-Za-z-]{{1,64}})$"
)
EXAMPLE = "1764620000123456_0000000000000042_01a214a6-7e73-734f-8c4d-68fe7c9b80d9"


class Sentinel(Enum):
    """The protocol's two reserved offsets."""

    START = "-1"  # the beginning of the stream (what is still retained)
    NOW = "now"  # the current tail: only what comes next


@dataclass(frozen=True, order=True)
class Offset:
    """A position this server issued: the chain (and its start time) and the next offset."""

    epoch_us: int
    offset: int
    chain: str

    def token(self) -> str:
        return f"{self.epoch_us:0{_DIGITS}d}_{self.offset:0{_DIGITS}d}_{self.chain}"

    def at(self, offset: int) -> Offset:
        """The same chain at another offset."""
        return Offset(self.epoch_us, offset, self.chain)


class BadOffset(ValueError):
    """The offset parameter is neither a sentinel nor a token this server issues."""


def parse(raw: str) -> Sentinel | Offset:
    """Read the ``offset`` query parameter; BadOffset says what is accepted."""
    for sentinel in Sentinel:
        if raw == sentinel.value:
            return sentinel
    match = _TOKEN.match(raw)
    if match is None:
        raise BadOffset(
            f"offset={raw[:80]!r} is not accepted; use -1 (the start of the stream), now "
            f"(its tail) or a Stream-Next-Offset this server sent, e.g. {EXAMPLE}"
        )
    return Offset(int(match["epoch"]), int(match["offset"]), match["chain"])
