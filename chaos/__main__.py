"""python -m chaos TARGET [N]: fault injection against the running compose stack.

It runs in the ``chaos`` compose service, which the Make targets start with
``docker compose run`` (``make up`` never does): the project's image with the
Docker engine's socket mounted, so the host needs only Docker, Compose and make.

Targets (the Make targets chaos-TARGET / soak-subscriber call these):
  subscriber          one SIGKILL mid-stream, a few seconds down, restart, verdict
  soak-subscriber N   N SIGKILLs at random instants (N a whole number, 1 or more;
                      SEED=S replays a run)
  worker              SIGKILL the worker mid-activity; the order must still complete
  llm                 SIGKILL the llm-worker mid-answer; the rendered text must equal the result
  temporal            restart the Temporal server mid-stream; everyone must reconnect
Each prints what it did and a verdict line. Exit codes: 0 PASS; 1 FAIL (an
invariant broke, or the run could not finish); 2 refused (bad input, or the
stack is not up).
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from docker.errors import DockerException

from chaos.engine import Refusal, Stack, StackSubscriber, run_as_app
from chaos.llm import chaos_llm
from chaos.subscriber import Report, audit_ledger, kill_and_resume, soak, verdict
from chaos.temporal import chaos_temporal
from chaos.worker import chaos_worker
from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS, one_line
from services.shared.ledger import LedgerError
from services.shared.runner import Fatal
from services.shared.settings import ConfigError, Settings

TARGETS = ("subscriber", "soak-subscriber", "worker", "temporal", "llm")
STACK = ("temporal", "worker", "subscriber")
# Targets that act on more than STACK: they refuse unless these run too, and restart them.
NEEDS = {"llm": ("llm-worker",)}
# What a fault run can meet and report as a FAIL; anything else is a bug (traceback).
FAILURES: tuple[type[BaseException], ...] = (
    TimeoutError,
    Fatal,
    LedgerError,
    DockerException,
    OSError,
    *TEMPORAL_ERRORS,
)


def _printer(target: str) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"chaos-{target}: {message}", flush=True)

    return say


def _count(argv: list[str]) -> int:
    raw = argv[1] if len(argv) > 1 else "20"
    if not raw.isdigit() or int(raw) < 1:
        raise Refusal(f"N={raw!r} is not accepted; use a whole number, 1 or more")
    return int(raw)


def _seed() -> int:
    raw = os.environ.get("SEED") or str(random.randrange(1 << 32))
    if not raw.isdigit():
        raise Refusal(f"SEED={raw!r} is not accepted; use a whole number (a seed printed before)")
    return int(raw)


def _soak(stack: Stack, settings: Settings, kills: int, seed: int) -> bool:
    say = _printer("soak-subscriber")
    say(f"random seed {seed} (replay this run with SEED={seed})")
    subscriber = StackSubscriber(stack, settings.ledger_path)
    report = soak(subscriber, kills, rng=random.Random(seed), say=say)
    print(verdict(report), flush=True)
    return report.ok


def _once(stack: Stack, settings: Settings) -> bool:
    subscriber = StackSubscriber(stack, settings.ledger_path)
    report = Report(kills=[kill_and_resume(subscriber, down_s=5.0, say=_printer("subscriber"))])
    report.audit = audit_ledger(subscriber)
    print(verdict(report), flush=True)
    return report.ok


def _parse(argv: list[str]) -> Callable[[Stack, Settings], bool]:
    """The fault run ``argv`` asks for; Refusal names what is accepted."""
    target = argv[0] if argv else ""
    if target == "subscriber":
        return _once
    if target == "soak-subscriber":
        kills, seed = _count(argv), _seed()
        return lambda stack, settings: _soak(stack, settings, kills, seed)
    if target == "worker":
        return lambda stack, settings: asyncio.run(chaos_worker(stack, settings, _printer(target)))
    if target == "llm":
        return lambda stack, settings: asyncio.run(chaos_llm(stack, settings, _printer(target)))
    if target == "temporal":
        return lambda stack, settings: asyncio.run(
            chaos_temporal(stack, settings, _printer(target))
        )
    raise Refusal(f"target {target!r} is not accepted; use one of: {', '.join(TARGETS)}")


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        run = _parse(argv)  # bad input is refused before anything is touched
        settings = Settings.from_env()
        run_as_app()
        stack = Stack.find()
        stack.require_running(*STACK, *NEEDS.get(argv[0], ()))
    except (Refusal, ConfigError) as err:
        print(f"chaos: {err}", file=sys.stderr, flush=True)
        return 2
    target = f"chaos-{argv[0]}"
    # Errors only: the tools say what they do themselves, and the SDK's routine
    # retries while a server restarts would only interleave with that.
    logs.configure("chaos", fmt=settings.log_format, level="error")
    try:
        ok = run(stack, settings)
    except FAILURES as err:
        print(f"verdict: FAIL: {target} could not finish: {one_line(err)}", flush=True)
        ok = False
    finally:
        # Interrupted mid-fault (Ctrl-C, a timeout): leave the stack as we found it.
        restarted = stack.start_stopped(*STACK, *NEEDS.get(argv[0], ()))
        if restarted:
            print(f"{target}: started again: {', '.join(restarted)}", flush=True)
    return 0 if ok else 1


def _leave(code: int) -> NoReturn:
    """Exit without interpreter teardown, which can abort with the SDK's threads alive."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    # `docker stop` sends SIGTERM to PID 1, which Python would otherwise ignore.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        _leave(main(sys.argv[1:]))
    except KeyboardInterrupt:
        _leave(130)
    except BaseException:
        traceback.print_exc()
        _leave(1)
