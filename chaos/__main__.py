"""python -m chaos TARGET [N]: fault injection against the running compose stack.

Targets (the Make targets of the same names call these):
  subscriber          one SIGKILL mid-stream, a few seconds down, restart, verdict
  soak-subscriber N   N SIGKILLs at random instants (N a whole number, 1 or more)
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable

from chaos.compose import ComposeSubscriber
from chaos.subscriber import Report, kill_and_resume, read, soak, verdict
from services.shared.ledger import audit

TARGETS = ("subscriber", "soak-subscriber")


def _printer(target: str) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"chaos-{target}: {message}", flush=True)

    return say


def _count(argv: list[str]) -> int:
    raw = argv[1] if len(argv) > 1 else "20"
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"chaos: N={raw!r} is not accepted; use a whole number, 1 or more")
    return int(raw)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TARGETS:
        print(__doc__, file=sys.stderr)
        return 2
    target = argv[0]
    say = _printer(target)
    subscriber = ComposeSubscriber()
    if target == "subscriber":
        report = Report(kills=[kill_and_resume(subscriber, down_s=5.0, say=say)])
        report.audit = audit(read(subscriber) or [])
    else:
        report = soak(subscriber, _count(argv), rng=random.Random(), say=say)
    print(verdict(report), flush=True)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
