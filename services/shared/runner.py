"""How every service process starts, stops and exits.

``run_service`` reads settings, configures logging, runs the service's
coroutine, and maps the outcome to an exit code:

* 0: the job is done; for a long-running service, also SIGTERM/SIGINT (the
  normal way to stop it);
* 1: a :class:`Fatal` condition (Temporal unreachable, retries exhausted) or a crash;
* 2: bad input (:class:`~services.shared.settings.ConfigError`, or a
  :class:`Fatal` raised with ``code=2``);
* 128 + the signal number (143 for SIGTERM): a one-shot service stopped
  before its job was done. It did not do its job, so it must not say 0.

A long-running service runs under ``restart: unless-stopped``, so exiting on
bad input would restart it into the same refusal again and again. With
``ON_REFUSAL=wait`` (compose sets it) it logs the refusal once and then holds
it, staying up but never healthy, until it is stopped; then it exits 2.

It leaves with ``os._exit`` after flushing: interpreter teardown with the
SDK's Rust threads alive can abort with SIGABRT (exit 134) after the work
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
from services.shared.settings import LOG_FORMATS, ON_REFUSAL, ConfigError, Settings

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT = 0, 1, 2

ServiceMain = Callable[[Settings], Coroutine[Any, Any, None]]

log = logs.get(__name__)


class Fatal(Exception):
    """The service cannot go on; the message is the one-line cause it exits with."""

    def __init__(self, message: str, *, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def run_service(service: str, main: ServiceMain, *, one_shot: bool) -> NoReturn:
    """Run ``main`` as the process's only job, then exit with its outcome."""
    try:
        settings = Settings.from_env()
    except ConfigError as err:
        # Say so in the format asked for, if that variable at least is valid.
        logs.configure(service, fmt=_raw_choice("LOG_FORMAT", LOG_FORMATS, "console"))
        log.error("invalid configuration", error=str(err), exit_code=EXIT_BAD_INPUT)
        hold = _raw_choice("ON_REFUSAL", ON_REFUSAL, "exit") == "wait"
        _exit(asyncio.run(_hold_refusal()) if hold and not one_shot else EXIT_BAD_INPUT)
    logs.configure(service, fmt=settings.log_format, level=settings.log_level)
    settings.health_file.unlink(missing_ok=True)  # a restarted container keeps its /tmp
    code = asyncio.run(_supervise(main(settings), one_shot=one_shot))
    if code == EXIT_BAD_INPUT and settings.on_refusal == "wait" and not one_shot:
        code = asyncio.run(_hold_refusal())
    _exit(code)


async def _supervise(job: Coroutine[Any, Any, None], *, one_shot: bool) -> int:
    task = asyncio.create_task(job)
    received: list[signal.Signals] = []

    def stop(sig: signal.Signals) -> None:
        received.append(sig)
        task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop, sig)
    try:
        await task
    except asyncio.CancelledError:
        if not received:
            raise
        if not one_shot:
            log.info("stopped", signal=received[0].name)
            return EXIT_OK
        code = 128 + received[0].value
        log.warning("interrupted before finishing", signal=received[0].name, exit_code=code)
        return code
    except Fatal as err:
        log.error("giving up", cause=str(err), exit_code=err.code)
        return err.code
    except Exception:
        log.exception("crashed", exit_code=EXIT_FAILED)
        return EXIT_FAILED
    return EXIT_OK


async def _hold_refusal() -> int:
    """Stay up with the refusal on record until SIGTERM/SIGINT; then exit 2."""
    log.warning(
        "holding the refusal until stopped",
        why="a restart would only repeat it; fix the cause above, then restart the service",
    )
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopped.set)
    await stopped.wait()
    return EXIT_BAD_INPUT


def _raw_choice(name: str, accepted: tuple[str, ...], default: str) -> str:
    """A choice read before settings exist (they failed): valid or the default."""
    value = os.environ.get(name, "").strip().lower()
    return value if value in accepted else default


def _exit(code: int) -> NoReturn:
    """Flush everything we wrote, then skip interpreter teardown (see module doc)."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)
