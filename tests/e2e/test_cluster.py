"""The compose stack on another "cluster": every Temporal call through a TLS front door.

The front door (the ``temporal-tls`` service under the ``tls`` profile:
nginx:1.26.3 with deploy/tls's config and a private CA's certificates, made
by testkit/tls.py) stands in for a cluster's own, such as Temporal Cloud's.
The services learn where it is and how to prove who they are only from
their env file, as a user's temporal.env would tell them; the stack's plain
server is still there behind the door, as Cloud's would be.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testkit.tls import Certificates, Shape, make_certificates, render
from tests.e2e.cli import compose
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

API_KEY = "tk-" + uuid.uuid4().hex  # the key the door accepts; no log line may hold it
MOUNTED = Path("/etc/nginx/front-door")  # where compose mounts TEMPORAL_TLS_DIR
SERVICES = ("temporal", "temporal-tls", "worker", "subscriber")


def _env_file(certs: Certificates, shape: Shape, path: Path) -> Path:
    """A temporal.env as a user writes it: address, CA and one credential, PEMs inline."""
    pem = {"ca": certs.ca.read_text().strip(), "client": certs.client.read_text().strip()}
    lines = [
        "TEMPORAL_ADDRESS=temporal-tls:7233",
        f'TEMPORAL_TLS_SERVER_CA_CERT_DATA="{pem["ca"]}"',
    ]
    if shape == "api-key":
        lines.append(f"TEMPORAL_API_KEY={API_KEY}")
    else:
        key = certs.client_key.read_text().strip()
        lines += [f'TEMPORAL_TLS_CLIENT_CERT_DATA="{pem["client"]}"']
        lines += [f'TEMPORAL_TLS_CLIENT_KEY_DATA="{key}"']
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class TlsStack:
    stack: Stack
    shape: Shape
    certs: Certificates


@pytest.fixture(scope="module", params=["api-key", "mtls"])
def tls_stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TlsStack]:
    """A compose project of its own, its services pointed at the front door."""
    shape: Shape = request.param
    directory = tmp_path_factory.mktemp(f"tls-{shape}")
    certs = make_certificates(directory)
    api_key = API_KEY if shape == "api-key" else None
    render(
        certs,
        shape,
        listen="7233",
        upstream="temporal:7233",
        api_key=api_key,
        seen_at=MOUNTED,
        run=Path("/tmp"),  # noqa: S108 (the container's own tmpfs)
    )
    for path in [directory, *directory.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the container's nginx user reads them
    saved = dict(os.environ)
    os.environ.update(
        COMPOSE_PROJECT_NAME=f"wfs-tls-{uuid.uuid4().hex[:6]}",
        COMPOSE_PROFILES="tls",
        TEMPORAL_TLS_DIR=str(directory),
        TEMPORAL_TLS_SHAPE=shape,
        TEMPORAL_ENV_FILE=str(_env_file(certs, shape, directory.parent / f"{shape}.env")),
        TEMPORAL_PORT="",
        TEMPORAL_UI_PORT="",
        LOG_FORMAT="json",
        CHARGE_SECONDS="0.5",
        PIPELINE_STEP_SECONDS="0.1",
        PIPELINE_STEPS_PER_STAGE="2",
    )
    try:
        compose("up", "--detach", "--build", *SERVICES, timeout=900)
        yield TlsStack(Stack(), shape, certs)
    finally:
        compose("down", "--volumes", "--remove-orphans", check=False, timeout=300)
        os.environ.clear()
        os.environ.update(saved)


def test_worker_order_and_subscriber_complete_through_the_front_door(tls_stack: TlsStack) -> None:
    order = compose("run", "--rm", "--no-deps", "order-starter", check=False, timeout=300)
    lines = [line for line in order.stdout.splitlines() if line.startswith("{")]
    assert order.returncode == 0, order.stdout[-2000:] + order.stderr[-2000:]
    assert '"event": "workflow result"' in lines[-1], lines[-3:]

    def pipeline_done() -> bool:
        return any(
            line["event"] == "workflow result" for line in tls_stack.stack.logs("subscriber")
        )

    tls_stack.stack.wait_until("the subscriber to record a whole pipeline run", pipeline_done)
    for service in ("worker", "subscriber"):
        connected = [line for line in tls_stack.stack.logs(service) if line["event"] == "connected"]
        assert [line["address"] for line in connected] == ["temporal-tls:7233"], service
    assert '"address": "temporal-tls:7233"' in order.stdout

    # The key went with every call and is on no line (compose's own output included).
    everything = compose("logs", "--no-color", *SERVICES).stdout + order.stdout + order.stderr
    assert API_KEY not in everything


def test_the_door_refuses_a_wrong_credential_at_once(tls_stack: TlsStack) -> None:
    """The same stack, a service holding a wrong credential: it stops at once, naming it."""
    if tls_stack.shape == "api-key":
        wrong, refused = {"TEMPORAL_API_KEY": "tk-wrong"}, "refused this client's API key"
    else:
        certs = tls_stack.certs
        wrong = {
            "TEMPORAL_TLS_CLIENT_CERT_DATA": certs.other_client.read_text(),
            "TEMPORAL_TLS_CLIENT_KEY_DATA": certs.other_client_key.read_text(),
        }
        refused = "refused this client's certificate"
    flags = [arg for name, value in wrong.items() for arg in ("--env", f"{name}={value}")]
    run = compose("run", "--rm", "--no-deps", *flags, "order-starter", check=False)
    assert run.returncode == 1, run.stdout[-2000:]
    assert "retrying" not in run.stdout
    assert refused in run.stdout and "UNAUTHENTICATED" in run.stdout
