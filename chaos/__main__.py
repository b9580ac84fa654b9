"""python -m chaos TARGET [N]: fault injection against the running compose stack.

Targets (the Make targets chaos-TARGET / soak-subscriber call these):
  subscriber          one SIGKILL mid-stream, a few seconds down, restart, verdict
  soak-subscriber N   N SIGKILLs at random instants (N a whole number, 1 or more;
                      SEED=S replays a run)
  worker              SIGKILL the worker mid-activity; the order must still complete
  temporal            restart the Temporal server mid-stream; everyone must reconnect
Each prints what it did and a verdict line, and exits 1 when an invariant broke.
"""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Callable

from chaos.compose import ComposeSubscriber, require_running
from chaos.subscriber import Report, audit_ledger, kill_and_resume, soak, verdict
from chaos.temporal import chaos_temporal
from chaos.worker import chaos_worker

TARGETS = ("subscriber", "soak-subscriber", "worker", "temporal")


def _printer(target: str) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"chaos-{target}: {message}", flush=True)

    return say


def _count(argv: list[str]) -> int:
    raw = argv[1] if len(argv) > 1 else "20"
    if not raw.isdigit() or int(raw) < 1:
        raise SystemExit(f"chaos: N={raw!r} is not accepted; use a whole number, 1 or more")
    return int(raw)


def _subscriber(target: str, argv: list[str], say: Callable[[str], None]) -> bool:
    subscriber = ComposeSubscriber()
    if target == "subscriber":
        report = Report(kills=[kill_and_resume(subscriber, down_s=5.0, say=say)])
        report.audit = audit_ledger(subscriber)
    else:
        seed = int(os.environ.get("SEED") or random.randrange(1 << 32))
        say(f"random seed {seed} (replay this run with SEED={seed})")
        report = soak(subscriber, _count(argv), rng=random.Random(seed), say=say)
    print(verdict(report), flush=True)
    return report.ok


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TARGETS:
        print(__doc__, file=sys.stderr)
        return 2
    target = argv[0]
    say = _printer(target)
    require_running("temporal", "worker", "subscriber")
    if target == "worker":
        ok = chaos_worker(say)
    elif target == "temporal":
        ok = chaos_temporal(say)
    else:
        ok = _subscriber(target, argv, say)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
