"""Temporal's errors as HTTP answers: an outage, a refusal and a bug are three different things.

* Temporal not answering (connection refused or lost, a deadline) is 503
  with ``Retry-After``: it passes, so a client should try again.
* Temporal busy, or failing this one call in a way it may not repeat, is 503
  with ``Retry-After`` too, and says so.
* An answer - a bad argument, a refused permission, a missing namespace -
  is reported as what it is (400, 404, 409, 502) with the server's words, and
  no ``Retry-After``: asking again gets the same answer.
* Anything else is a bug: it propagates, and the guard answers 500 and logs
  the traceback.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

from fastapi import HTTPException
from temporalio.client import WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.service import RPCError, RPCStatusCode

from services.shared.backoff import (
    TEMPORAL_ERRORS,
    is_connect_failure,
    is_run_gone,
    is_transient,
    one_line,
)

RETRY_AFTER_S = "5"
# A call that takes longer has met a Temporal that does not answer.
TEMPORAL_TIMEOUT_S = 30.0

_NOT_ANSWERING = frozenset({RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED})
_ANSWERS = {
    RPCStatusCode.INVALID_ARGUMENT: 400,
    RPCStatusCode.OUT_OF_RANGE: 400,
    RPCStatusCode.NOT_FOUND: 404,
    RPCStatusCode.ALREADY_EXISTS: 409,
    RPCStatusCode.FAILED_PRECONDITION: 409,
}


def unavailable(detail: str) -> HTTPException:
    """A 503 that tells the client when to try again."""
    return HTTPException(503, detail, {"Retry-After": RETRY_AFTER_S})


def not_answering(error: BaseException) -> bool:
    """True for a connection fault: the server could not be reached or did not reply in time."""
    if isinstance(error, TimeoutError | WorkflowUpdateRPCTimeoutOrCancelledError):
        return True
    if isinstance(error, RPCError):
        return error.status in _NOT_ANSWERING
    return is_connect_failure(error) and is_transient(error)


def temporal_answer(error: BaseException) -> HTTPException | None:
    """The HTTP answer for a Temporal error, or None when ``error`` is not Temporal's."""
    if not_answering(error):
        return unavailable(f"Temporal is not answering: {one_line(error)}")
    if not isinstance(error, RPCError):
        return None
    name = error.status.name if error.status is not None else "UNKNOWN"
    words = f"Temporal refused ({name}): {one_line(error)}"
    if is_transient(error):
        return unavailable(f"{words}; it may pass, try again")
    if error.status == RPCStatusCode.NOT_FOUND and not is_run_gone(error):
        return HTTPException(502, words)  # no such namespace: our configuration, not the request
    return HTTPException(_ANSWERS.get(error.status, 502), words)


async def temporal[T](call: Awaitable[T]) -> T:
    """Await a Temporal call, bounded; its error becomes the HTTP answer that fits it."""
    try:
        async with asyncio.timeout(TEMPORAL_TIMEOUT_S):
            return await call
    except TimeoutError:
        raise unavailable(f"Temporal did not answer within {TEMPORAL_TIMEOUT_S:.0f} s") from None
    except TEMPORAL_ERRORS as err:
        answer = temporal_answer(err)
        if answer is None:
            raise  # a bug: the guard logs it and answers 500
        raise answer from None
