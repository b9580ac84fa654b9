"""Bounded, logged reconnects, and the one place that tells a passing fault from a lasting one.

A lost or restarting server, an update poll that timed out, a connection
being re-dialled: these pass, so a reader retries them with a capped
exponential delay. Everything else Temporal can answer is an answer, and
retrying it would only repeat it: a run that no longer exists (retention, a
wiped server, another cluster) raises :class:`RunGone` for the caller to
handle; wrong credentials, a missing namespace or a bad request raise
:class:`Fatal` at once, with the server's words as the cause.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from services.shared import logs
from services.shared.runner import Fatal

log = logs.get(__name__)

# What a Temporal call can raise; ``Backoff.failed`` sorts them out.
TEMPORAL_ERRORS: tuple[type[BaseException], ...] = (
    RPCError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    RuntimeError,  # "Failed client connect" while Core dials a server that is down
)

# The statuses SDK Core itself retries, plus a long poll's deadline.
_TRANSIENT_STATUSES = frozenset(
    {
        RPCStatusCode.ABORTED,
        RPCStatusCode.CANCELLED,
        RPCStatusCode.DATA_LOSS,
        RPCStatusCode.DEADLINE_EXCEEDED,
        RPCStatusCode.INTERNAL,
        RPCStatusCode.OUT_OF_RANGE,
        RPCStatusCode.RESOURCE_EXHAUSTED,
        RPCStatusCode.UNAVAILABLE,
        RPCStatusCode.UNKNOWN,
    }
)
_TOO_LARGE = "grpc: received message larger than max"  # RESOURCE_EXHAUSTED, not transient


class RunGone(Exception):
    """The pinned workflow run does not exist on this server (any more)."""


def one_line(error: BaseException) -> str:
    """The error's message on one line, or its type when it has none."""
    return " ".join(str(error).split()) or type(error).__name__


def is_transient(error: BaseException) -> bool:
    """True for faults that pass by themselves: retry them."""
    if isinstance(error, WorkflowUpdateRPCTimeoutOrCancelledError):
        return True
    if isinstance(error, RPCError):
        if _has_detail(error, "WorkflowNotReadyFailure"):
            # An update met a workflow task the server refused or that failed
            # (a run closing under load, say); the server retries the task.
            return True
        return error.status in _TRANSIENT_STATUSES and not error.message.startswith(_TOO_LARGE)
    return isinstance(error, RuntimeError) and str(error).startswith("Failed client connect")


def is_run_gone(error: BaseException) -> bool:
    """True when a call on a run failed because the run (not the namespace) is not there."""
    if not isinstance(error, RPCError) or error.status != RPCStatusCode.NOT_FOUND:
        return False
    return not _has_detail(error, "NamespaceNotFoundFailure")


def _has_detail(error: RPCError, failure: str) -> bool:
    """Whether the server typed its answer as ``failure`` (temporal.api.errordetails.v1)."""
    return any(d.type_url.endswith(f".{failure}") for d in error.grpc_status.details)


def raise_if_lasting(error: BaseException, what: str) -> None:
    """Raise RunGone or Fatal for an error that retrying cannot fix; return if it can."""
    if is_transient(error):
        return
    if is_run_gone(error):
        raise RunGone(f"{what}: {one_line(error)}") from error
    if isinstance(error, RPCError):
        status = error.status.name if error.status is not None else "UNKNOWN"
        raise Fatal(f"{what}: Temporal refused ({status}): {one_line(error)}") from error
    raise error  # not Temporal's answer: a bug, let it crash with its traceback


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
        """Log, then sleep before the next try.

        Raises RunGone or Fatal at once for a lasting error, and Fatal once
        the budget of transient failures is spent.
        """
        raise_if_lasting(error, self.what)
        self._failures += 1
        cause = one_line(error)
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
