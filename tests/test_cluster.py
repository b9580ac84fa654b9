"""Every service through a TLS front door: API key and mTLS, and each refusal at once.

The front door (testkit/tls.py: nginx with a certificate from a private CA,
in front of this session's dev server) stands in for a cluster's own, such
as Temporal Cloud's. The services are OS processes configured only through
the SDK's environment configuration (TEMPORAL_ADDRESS, TEMPORAL_API_KEY,
TEMPORAL_TLS_*), exactly as compose passes temporal.env to them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from testkit.devserver import DevServer, free_port
from testkit.sse import SseEvent, SseParser
from testkit.tls import SERVER_NAME, Certificates, FrontDoor, Shape, front_door, make_certificates
from tests.processes import Service

# The key the API-key front door accepts; a marker no log line may contain.
API_KEY = "tk-" + uuid.uuid4().hex
QUICK = {
    "CHARGE_SECONDS": "0.2",
    "PIPELINE_STEP_SECONDS": "0.05",
    "PIPELINE_STEPS_PER_STAGE": "1",
    "PIPELINE_RUNS": "1",
    "PUBLISHER_EVENTS": "20",
    "PUBLISHER_BATCH_SIZE": "7",
    "TICKER_TICKS": "4",
    "TICKER_INTERVAL_SECONDS": "0.1",
    "TICKER_SLOW_DELAY_SECONDS": "0.2",
    # Every line a service can write, so that "the key is in none" means something.
    "LOG_LEVEL": "debug",
}


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def doors(certs: Certificates, server: DevServer) -> Iterator[dict[Shape, FrontDoor]]:
    """Each shape of front door, in front of the session's dev server."""
    with (
        front_door(certs, "api-key", server.address, api_key=API_KEY) as keyed,
        front_door(certs, "mtls", server.address) as mutual,
        front_door(certs, "namespace-key", server.address, api_key=API_KEY) as namespace,
    ):
        yield {"api-key": keyed, "mtls": mutual, "namespace-key": namespace}


def _service(module: str, door: FrontDoor, tmp_path: Path, **extra: str) -> Service:
    """``module`` holding ``door``'s credential and nothing else of this session."""
    env = {**door.client_env(), **QUICK, "TASK_QUEUE": f"tls-{tmp_path.name}", **extra}
    return Service(module, env, tmp_path / f"{module}.log")


@pytest.mark.parametrize("shape", ["api-key", "mtls"])
def test_every_service_does_its_job_through_the_front_door(
    doors: dict[Shape, FrontDoor], shape: Shape, tmp_path: Path
) -> None:
    door = doors[shape]
    worker = _service("worker", door, tmp_path)
    worker.start()
    worker.wait_for_log("worker ready")
    tag = f"{shape}-{tmp_path.name}"
    subscriber = _service(
        "subscriber",
        door,
        tmp_path,
        LEDGER_PATH=str(tmp_path / "events.jsonl"),
        PIPELINE_WORKFLOW_ID=f"pipeline-{tag}",
        HEALTH_FILE=str(tmp_path / "subscriber-healthy"),
    )
    web = _service(
        "web",
        door,
        tmp_path,
        WEB_LISTEN_PORT=str(free_port()),
        HEALTH_FILE=str(tmp_path / "web-healthy"),
    )
    one_shots = [
        _service(module, door, tmp_path, TICKER_WORKFLOW_ID=f"{module}-{tag}")
        for module in ("order_starter", "publisher", "ticker_fast", "ticker_slow")
    ]
    for service in (subscriber, web, *one_shots):
        service.start()

    # The web's job: start an order over Temporal, then stream it to a viewer.
    port = web.wait_for_log("dashboard ready")["port"]
    states = [e.json()["state"] for e in _order_through_web(port) if e.event == "status"]
    assert states == ["received", "shipped", "complete"]

    with ThreadPoolExecutor(len(one_shots)) as pool:
        codes = dict(zip(one_shots, pool.map(lambda s: s.wait(), one_shots), strict=True))
    assert {s.module: code for s, code in codes.items()} == {s.module: 0 for s in one_shots}
    last = {s.module: s.last()["event"] for s in one_shots}
    assert last == {
        "order_starter": "workflow result",
        "publisher": "hub closed",
        "ticker_fast": "final tick",
        "ticker_slow": "final tick",
    }
    assert subscriber.wait() == 0  # PIPELINE_RUNS=1: one whole run recorded, then done
    assert subscriber.last()["event"] == "done"
    assert web.stop() == 0
    assert worker.stop() == 0

    everyone = [worker, subscriber, web, *one_shots]
    connected = {s.module: s.wait_for_log("connected")["address"] for s in everyone}
    assert set(connected.values()) == {door.address}
    # The key was sent on every call; it is written on no line, at any level.
    for service in everyone:
        text = service.log_path.read_text()
        assert text.count("\n") > 2 and API_KEY not in text, service.module


def _order_through_web(port: int) -> list[SseEvent]:
    """Place an order with the dashboard's button and read its stream to the end."""
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        placed = http.post("/api/orders", json={})
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["workflow_id"]
        events: list[SseEvent] = []
        parser = SseParser()
        with http.stream("GET", f"/streams/{order_id}", params={"topics": "status"}) as stream:
            assert stream.status_code == 200, stream.read()
            for line in stream.iter_lines():
                if (event := parser.line(line)) is not None:
                    events.append(event)
                    if event.event == "end":
                        return events
    raise AssertionError(f"the stream of {order_id} ended without `end`: {events}")


@dataclass(frozen=True)
class Refused:
    """A credential a front door (or the client) refuses, and what the cause must say."""

    door: Shape
    change: dict[str, str | None]  # None: leave the variable out
    says: tuple[str, ...]


NO_CERTIFICATE = {
    "TEMPORAL_TLS": "true",
    "TEMPORAL_TLS_CLIENT_CERT_PATH": None,
    "TEMPORAL_TLS_CLIENT_KEY_PATH": None,
}
KEY, CERTIFICATE = "refused this client's API key", "refused this client's certificate"
TLS_FAILED = "no secure connection to Temporal at "
REFUSALS = {
    "wrong API key": Refused(
        "api-key", {"TEMPORAL_API_KEY": "tk-wrong"}, (KEY, "UNAUTHENTICATED: API key refused")
    ),
    "API key without access to the namespace": Refused(
        "namespace-key", {"TEMPORAL_API_KEY": "tk-wrong"}, (KEY, "PERMISSION_DENIED: this API")
    ),
    "no client certificate": Refused(
        "mtls", NO_CERTIFICATE, ("which sent no credential", "UNAUTHENTICATED", "none was sent")
    ),
    "client certificate of another CA": Refused(  # and its key, in the test
        "mtls", {"TEMPORAL_TLS_CLIENT_CERT_PATH": "other_client.pem"}, (CERTIFICATE, "its CA")
    ),
    "untrusted server certificate": Refused(
        "api-key",
        {"TEMPORAL_TLS_SERVER_CA_CERT_PATH": "other_ca.pem"},
        (TLS_FAILED, "UnknownIssuer"),
    ),
    "server name that does not match": Refused(
        "api-key",
        {"TEMPORAL_TLS_SERVER_NAME": "wrong.test"},
        (TLS_FAILED, "NotValidForName, asked for wrong.test"),
    ),
}


@pytest.mark.parametrize("case", REFUSALS)
def test_a_refused_credential_stops_the_service_at_once_naming_it(
    doors: dict[Shape, FrontDoor], certs: Certificates, case: str, tmp_path: Path
) -> None:
    refused = REFUSALS[case]
    door = doors[refused.door]
    env: dict[str, str] = {**door.client_env(), "CONNECT_ATTEMPTS": "5", "TASK_QUEUE": "never"}
    for name, value in refused.change.items():
        env.pop(name, None)
        if value is not None:
            env[name] = str(certs.directory / value) if value.endswith(".pem") else value
    if "other_client" in env.get("TEMPORAL_TLS_CLIENT_CERT_PATH", ""):
        env["TEMPORAL_TLS_CLIENT_KEY_PATH"] = str(certs.other_client_key)
    worker = Service("worker", env, tmp_path / "worker.log")  # long-running: it must not retry
    started = time.monotonic()
    worker.start()
    code = worker.wait(60)
    took = time.monotonic() - started
    logs, last = worker.logs(), worker.last()
    print(f"\n{case}: exit {code} after {took:.2f} s: {last.get('cause')}")
    assert code == 1
    assert last["event"] == "giving up"
    cause = last["cause"]
    assert all(phrase in cause for phrase in refused.says), cause
    assert cause.startswith(("Temporal at " + door.address, "no secure connection"))
    assert "\n" not in cause and "reach" not in cause
    assert not [line for line in logs if "retrying" in line["event"]]
    assert not [line for line in logs if line["event"] == "connected"]
    assert API_KEY not in worker.log_path.read_text()


def test_an_unreachable_cluster_is_still_retried(certs: Certificates, tmp_path: Path) -> None:
    """TLS and a key configured, nothing listening: a server not up yet, so retry, bounded."""
    address = f"127.0.0.1:{free_port()}"
    env = {
        "TEMPORAL_ADDRESS": address,
        "TEMPORAL_API_KEY": API_KEY,
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(certs.ca),
        "TEMPORAL_TLS_SERVER_NAME": SERVER_NAME,
        "CONNECT_ATTEMPTS": "3",
        "CONNECT_MAX_BACKOFF_SECONDS": "0.2",
    }
    order = Service("order_starter", env, tmp_path / "order.log")
    order.start()
    assert order.wait(60) == 1
    logs = order.logs()
    retries = [line for line in logs if line["event"] == "temporal not reachable, retrying"]
    assert [line["attempt"] for line in retries] == [1, 2]
    assert order.last()["event"] == "giving up"
    assert order.last()["cause"].startswith(f"cannot reach Temporal at {address} after 3 attempts")
    assert API_KEY not in order.log_path.read_text()


def test_a_profile_file_is_enough(doors: dict[Shape, FrontDoor], tmp_path: Path) -> None:
    """TEMPORAL_CONFIG_FILE and TEMPORAL_PROFILE alone: the SDK's TOML profile, mTLS."""
    door = doors["mtls"]
    certs = door.certs
    profile = tmp_path / "temporal.toml"
    profile.write_text(
        f'[profile.cluster]\naddress = "{door.address}"\nnamespace = "default"\n\n'
        f'[profile.cluster.tls]\nserver_name = "{SERVER_NAME}"\n'
        f'server_ca_cert_path = "{certs.ca}"\n'
        f'client_cert_path = "{certs.client}"\nclient_key_path = "{certs.client_key}"\n'
    )
    env = {"TEMPORAL_CONFIG_FILE": str(profile), "TEMPORAL_PROFILE": "cluster", **QUICK}
    worker = Service("worker", {**env, "TASK_QUEUE": f"toml-{tmp_path.name}"}, tmp_path / "w.log")
    worker.start()
    assert worker.wait_for_log("connected")["address"] == door.address
    order = Service(
        "order_starter", {**env, "TASK_QUEUE": f"toml-{tmp_path.name}"}, tmp_path / "o.log"
    )
    order.start()
    assert order.wait() == 0
    assert order.last()["event"] == "workflow result"
    assert worker.stop() == 0
