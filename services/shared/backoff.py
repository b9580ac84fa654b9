"""Bounded, logged retries, and the one place that tells a passing fault from a lasting one.

A lost or restarting server, an update poll that timed out, a connection
being re-dialled: these pass, so a caller retries them with a capped
exponential delay (:class:`Backoff`, the project's one retry mechanism: the
first connect and every reader use it). Everything else Temporal can answer
is an answer, and retrying it would only repeat it: a run that no longer
exists (retention, a wiped server, another cluster) raises :class:`RunGone`
for the caller to handle; wrong credentials, a missing namespace or a bad
request raise :class:`Fatal` at once, with the server's words as the cause.

The first connect fails differently: ``Client.connect`` wraps whatever went
wrong, the server's own answer included, in a ``RuntimeError`` ("Failed
client connect: ..."), so that error is sorted by the status or the TLS
failure its text carries (:func:`connect_refusal`), never by its type.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field

from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from services.shared import logs
from services.shared.runner import Fatal

log = logs.get(__name__)

# What a call on a connected client can raise; ``Backoff.failed`` sorts them
# out. Not RuntimeError: once connected, the SDK reports a lost server as an
# RPCError (UNAVAILABLE), so any other RuntimeError is a bug, not an outage.
# Only ``Client.connect`` raises one for Temporal ("Failed client connect"),
# and ``connect`` alone handles it.
TEMPORAL_ERRORS: tuple[type[BaseException], ...] = (
    RPCError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
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

_CONNECT_FAILED = "Failed client connect"
# The server's answer inside a connect failure, as tonic prints its Status.
_CONNECT_STATUS = re.compile(
    r'Status \{ code: (?P<code>\w+), message: "(?P<message>(?:[^"\\]|\\.)*)"'
)
# The TLS handshake's verdicts (rustls' error variants, and the SDK's own
# check that HTTP/2 was agreed): each is the same on every retry.
_TLS_FAILURE = re.compile(
    r"\b(?P<kind>InvalidCertificate|AlertReceived|PeerIncompatible|PeerMisbehaved"
    r"|NoCertificatesPresented|InvalidMessage|H2NotNegotiated)\b(?:\((?P<detail>\w+))?"
)
_ASKED_NAME = re.compile(r'expected: \w+\("(?P<name>[^"]*)"\)')
_TLS_CAUSES = {
    "UnknownIssuer": "the server's certificate is not signed by a CA this client trusts; "
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH (or _DATA) names the CA to trust",
    "NotValidForName": "the server's certificate is not for the name this client asked for, "
    "the host of TEMPORAL_ADDRESS or TEMPORAL_TLS_SERVER_NAME",
    "Expired": "the server's certificate has expired",
    "H2NotNegotiated": "the server did not agree HTTP/2 (ALPN h2) in the TLS handshake, "
    "which gRPC needs; a TLS proxy in front of it must speak HTTP/2",
}


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
    return is_connect_failure(error) and connect_refusal(error) is None


def is_connect_failure(error: BaseException) -> bool:
    """True for the RuntimeError ``Client.connect`` raises for anything that went wrong."""
    return isinstance(error, RuntimeError) and str(error).startswith(_CONNECT_FAILED)


@dataclass(frozen=True)
class Refusal:
    """Why a connect was refused: by the server's answer, or in the TLS handshake."""

    cause: str  # one line
    by_server: bool  # the server said no (a gRPC status); else TLS did, on either side


def connect_refusal(error: BaseException) -> Refusal | None:
    """What refused a connect failure; None if it may pass (a server not up yet).

    A refusal is an answer that is the same on every try: the server's gRPC
    status when it is not a transient one (UNAUTHENTICATED for a wrong API key
    or client certificate, PERMISSION_DENIED, ...), or a TLS handshake that
    failed (an untrusted server certificate, a name it is not for, an alert).
    """
    if not is_connect_failure(error):
        return None
    text = str(error)
    status = _CONNECT_STATUS.search(text)
    if status is not None:
        code = _status_code(status["code"])
        if code in _TRANSIENT_STATUSES:
            return None
        name = code.name if code is not None else status["code"]
        return Refusal(f"{name}: {status['message']}", by_server=True)
    tls = _TLS_FAILURE.search(text)
    if tls is None:
        return None  # refused, reset or timed out at TCP, a name not resolving yet: may pass
    detail = (tls["detail"] or tls["kind"]).removesuffix("Context")
    cause = _TLS_CAUSES.get(detail, "the TLS handshake failed")
    if tls["kind"] == "AlertReceived":
        cause = "the server ended the TLS handshake: it refused this client's certificate"
    if (asked := _ASKED_NAME.search(text)) is not None:
        detail += f", asked for {asked['name']}"
    return Refusal(f"TLS failed ({detail}): {cause}", by_server=False)


def _status_code(name: str) -> RPCStatusCode | None:
    """tonic's ``Unauthenticated`` as the SDK's ``RPCStatusCode.UNAUTHENTICATED``."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()
    return RPCStatusCode.__members__.get(snake)


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
    """Exponential delay capped at ``cap`` seconds, at most ``attempts`` retries in a row.

    Call :meth:`succeeded` whenever the loop makes progress, so a long-lived
    service gets a fresh budget for each outage instead of one for its life.
    ``retrying`` is the event each retry logs.
    """

    what: str
    attempts: int
    base: float = 0.5
    cap: float = 5.0
    retrying: str = "connection lost, retrying"
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
            self.retrying,
            what=self.what,
            attempt=self._failures,
            of=self.attempts,
            retry_in_s=delay,
            error=cause,
        )
        await asyncio.sleep(delay)
