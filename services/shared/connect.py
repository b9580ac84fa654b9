"""The one way a service reaches Temporal: standard env config, bounded retries."""

from __future__ import annotations

import functools
import logging

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.envconfig import ClientConfig, ClientConnectConfig
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from services.shared import logs
from services.shared.backoff import (
    TEMPORAL_ERRORS,
    Backoff,
    connect_refusal,
    is_connect_failure,
    one_line,
)
from services.shared.converter import DATA_CONVERTER
from services.shared.runner import Fatal
from services.shared.settings import Settings

log = logs.get(__name__)

# What connecting can raise: Client.connect wraps every failure, the server's
# own answer included, in a RuntimeError ("Failed client connect: ...").
_CONNECT_ERRORS: tuple[type[BaseException], ...] = (RuntimeError, *TEMPORAL_ERRORS)
# The statuses of a server that knows who we are and says no.
_CREDENTIAL_REFUSED = frozenset({RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED})


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
    ``CONNECT_ATTEMPTS`` tries in all, each retry logged. An answer that
    retrying cannot change fails at once: the server refusing the client's API
    key or certificate, a TLS handshake that fails (an untrusted server
    certificate, a name it is not for), a namespace that does not exist. Both
    raise :class:`Fatal` with a one-line cause (exit code 1).
    """
    config = ClientConfig.load_client_connect_config()
    address = config.get("target_host") or "localhost:7233"
    backoff = Backoff(
        f"Temporal at {address}",
        attempts=settings.connect_attempts - 1,
        cap=settings.connect_max_backoff_seconds,
        retrying="temporal not reachable, retrying",
    )
    while True:
        try:
            client = await Client.connect(
                **config, runtime=runtime(), data_converter=DATA_CONVERTER
            )
            # Connecting checks nothing about us; asking for our namespace
            # checks the credentials and the namespace now, not mid-job.
            request = DescribeNamespaceRequest(namespace=client.namespace)
            await client.workflow_service.describe_namespace(request)
            break
        except _CONNECT_ERRORS as err:
            if isinstance(err, RuntimeError) and not is_connect_failure(err):
                raise  # not Temporal's answer: a bug
            refused = _refused(err, address, config)
            if refused is not None:
                raise refused from None  # the chained SDK error would only repeat it
            if is_connect_failure(err):
                await _retry(backoff, err, address, settings.connect_attempts)
            else:
                await backoff.failed(err)  # Fatal at once for a namespace that does not exist
    backoff.succeeded()
    log.info("connected", address=address, namespace=client.namespace)
    return client


def _refused(error: BaseException, address: str, config: ClientConnectConfig) -> Fatal | None:
    """The Fatal for a refusal of our credential or of TLS, naming it; None for anything else."""
    if isinstance(error, RPCError):
        # A cluster may let anyone connect and check only the namespace call.
        status = error.status
        if status is None or status not in _CREDENTIAL_REFUSED:
            return None
        cause, by_server = f"{status.name}: {one_line(error)}", True
    else:
        refusal = connect_refusal(error)
        if refusal is None:
            return None
        cause, by_server = refusal.cause, refusal.by_server
    if by_server:
        return Fatal(f"Temporal at {address} refused {_credential(config)}: {cause}")
    return Fatal(f"no secure connection to Temporal at {address}: {cause}")


async def _retry(backoff: Backoff, error: BaseException, address: str, attempts: int) -> None:
    """Log and wait before the next try; Fatal once the tries are spent."""
    try:
        await backoff.failed(error)
    except Fatal:
        cause = one_line(error)
        raise Fatal(
            f"cannot reach Temporal at {address} after {attempts} attempts: {cause}"
        ) from None


def _credential(config: ClientConnectConfig) -> str:
    """What this client showed the server, to name it in a refusal (never its value)."""
    if config.get("api_key"):
        return "this client's API key (TEMPORAL_API_KEY)"
    tls = config.get("tls")
    if isinstance(tls, TLSConfig) and tls.client_cert:
        return "this client's certificate (TEMPORAL_TLS_CLIENT_CERT_*)"
    return "this client, which sent no credential (no API key, no client certificate)"
