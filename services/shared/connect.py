"""The one way a service reaches Temporal: standard env config, bounded retries."""

from __future__ import annotations

import functools
import logging

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
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
    retry_if_exception,
    stop_after_attempt,
    wait_exponential,
)

from services.shared import logs
from services.shared.backoff import TEMPORAL_ERRORS, is_transient, one_line
from services.shared.converter import DATA_CONVERTER
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

    A server that is not reachable yet is retried with exponential backoff,
    ``CONNECT_ATTEMPTS`` times, each retry logged. An answer that retrying
    cannot change (wrong credentials, no such namespace) fails at once. Both
    raise :class:`Fatal` with a one-line cause (exit code 1).
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
            error=one_line(error) if error else "",
        )

    retrying = AsyncRetrying(
        stop=stop_after_attempt(settings.connect_attempts),
        wait=wait_exponential(multiplier=0.5, max=settings.connect_max_backoff_seconds),
        retry=retry_if_exception(is_transient),
        before_sleep=log_retry,
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                client = await Client.connect(
                    **config, runtime=runtime(), data_converter=DATA_CONVERTER
                )
                # Connecting checks nothing about us; asking for our namespace
                # checks the credentials and the namespace now, not mid-job.
                request = DescribeNamespaceRequest(namespace=client.namespace)
                await client.workflow_service.describe_namespace(request)
    except TEMPORAL_ERRORS as err:
        if is_transient(err):
            raise Fatal(
                f"cannot reach Temporal at {address} after {settings.connect_attempts} "
                f"attempts: {one_line(err)}"
            ) from err
        raise Fatal(f"Temporal at {address} refused this client: {one_line(err)}") from err
    log.info("connected", address=address, namespace=client.namespace)
    return client
