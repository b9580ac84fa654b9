"""Bounded, logged reconnects for long-running loops."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError

from services.shared import logs
from services.shared.runner import Fatal

log = logs.get(__name__)

# What a lost or restarting server looks like from a client call.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    RPCError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    RuntimeError,  # "Failed client connect" while Core re-dials
)


@dataclass
class Backoff:
    """Exponential delay capped at ``cap`` seconds, at most ``attempts`` failures in a row.

    Call :meth:`succeeded` whenever the loop makes progress, so a long-lived
    service gets a fresh budget for each outage instead of one for its life.
    """

    what: str
    attempts: int
    base: float = 0.5
    cap: float = 5.0
    _failures: int = field(default=0, init=False)

    def succeeded(self) -> None:
        if self._failures:
            log.info("reconnected", what=self.what, after_failures=self._failures)
        self._failures = 0

    async def failed(self, error: BaseException) -> None:
        """Log, then sleep before the next try; raise Fatal once the budget is spent."""
        self._failures += 1
        cause = " ".join(str(error).split()) or type(error).__name__
        if self._failures > self.attempts:
            raise Fatal(f"{self.what}: still failing after {self.attempts} retries: {cause}")
        delay = min(self.cap, self.base * 2 ** (self._failures - 1))
        log.warning(
            "connection lost, retrying",
            what=self.what,
            attempt=self._failures,
            of=self.attempts,
            retry_in_s=delay,
            error=cause,
        )
        await asyncio.sleep(delay)
