"""The one way a service reaches Temporal: standard env config, bounded retries."""

from __future__ import annotations

import functools
import logging

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from services.shared import logs
from services.shared.runner import Fatal
from services.shared.settings import Settings

log = logs.get(__name__)


@functools.cache
def runtime() -> Runtime:
    """A Core runtime whose Rust-side logs go through our logging, not raw stderr."""
    forwarding = LogForwardingConfig(logger=logging.getLogger("temporalio.core"))
    telemetry = TelemetryConfig(
        logging=LoggingConfig(
            filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
            forwarding=forwarding,
        )
    )
    return Runtime(telemetry=telemetry)


async def connect(settings: Settings) -> Client:
    """Connect with the SDK's env config (TEMPORAL_ADDRESS, _NAMESPACE, _API_KEY, TLS).

    Retries with exponential backoff, ``CONNECT_ATTEMPTS`` times, each retry
    logged; then raises :class:`Fatal` with a one-line cause (exit code 1).
    """
    config = ClientConfig.load_client_connect_config()
    address = config.get("target_host") or "localhost:7233"

    def log_retry(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning(
            "temporal not reachable, retrying",
            address=address,
            attempt=state.attempt_number,
            of=settings.connect_attempts,
            retry_in_s=round(state.upcoming_sleep, 1),
            error=_one_line(error),
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(settings.connect_attempts),
        wait=wait_exponential(multiplier=0.5, max=settings.connect_max_backoff_seconds),
        retry=retry_if_exception_type(RuntimeError),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                client = await Client.connect(**config, runtime=runtime())
    except RuntimeError as err:
        raise Fatal(
            f"cannot reach Temporal at {address} after {settings.connect_attempts} "
            f"attempts: {_one_line(err)}"
        ) from err
    log.info("connected", address=address, namespace=client.namespace)
    return client


def _one_line(error: BaseException | None) -> str:
    return " ".join(str(error).split()) if error else ""
