"""How every service process starts, stops and exits.

``run_service`` reads settings, configures logging, runs the service's
coroutine, and maps the outcome to an exit code:

* 0: the job is done, or SIGTERM/SIGINT asked us to stop (we stop cleanly);
* 1: a :class:`Fatal` condition (Temporal unreachable, retries exhausted) or a crash;
* 2: bad input (:class:`~services.shared.settings.ConfigError`, or a
  :class:`Fatal` raised with ``code=2``).

It then leaves with ``os._exit`` after flushing: interpreter teardown with
the SDK's Rust threads alive can abort with SIGABRT (exit 134) after the work
succeeded (temporalio/sdk-python#300), which Compose would read as a crash.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from services.shared import logs
from services.shared.settings import LOG_FORMATS, ConfigError, Settings

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

ServiceMain = Callable[[Settings], Coroutine[Any, Any, None]]


class Fatal(Exception):
    """The service cannot go on; the message is the one-line cause it exits with."""

    def __init__(self, message: str, *, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def run_service(service: str, main: ServiceMain) -> NoReturn:
    """Run ``main`` as the process's only job, then exit with its outcome."""
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        # Say so in the format asked for, if that variable at least is valid.
        requested = os.environ.get("LOG_FORMAT", "").strip().lower()
        logs.configure(service, fmt=requested if requested in LOG_FORMATS else "console")
        logs.get(__name__).error("invalid configuration", error=str(err))
        _exit(EXIT_BAD_INPUT)
    logs.configure(service, fmt=settings.log_format, level=settings.log_level)
    _exit(asyncio.run(_supervise(main(settings))))


async def _supervise(job: Coroutine[Any, Any, None]) -> int:
    log = logs.get(__name__)
    task = asyncio.create_task(job)
    received: list[str] = []

    def stop(sig: signal.Signals) -> None:
        received.append(sig.name)
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not received:
            raise
        log.info("stopped", signal=received[0])
        return EXIT_OK
    except Fatal as err:
        log.error("giving up", cause=str(err), exit_code=err.code)
        return err.code
    except Exception:
        log.exception("crashed")
        return EXIT_FAILED
    return EXIT_OK


def _exit(code: int) -> NoReturn:
    """Flush everything we wrote, then skip interpreter teardown (see module doc)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
