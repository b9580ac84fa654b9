"""A role's stdout carries only its figures; everything else it prints goes to stderr.

The bench reads a role's result from its stdout, but logging writes there
too (``services.shared.logs``), and so can the SDK's threads: a log line
written beside a long result line can break it. So a role keeps a private
copy of stdout for its own lines and points file descriptor 1 at stderr
(the role's log file) for everything else.
"""

from __future__ import annotations

import os
import sys
from typing import TextIO


def figures_channel() -> TextIO:
    """The process's original stdout, for its figures only; fd 1 now goes to stderr."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    return channel
