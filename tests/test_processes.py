"""Every service as its own OS process: exit codes, JSON logs, and a SIGKILLed subscriber."""

from __future__ import annotations

import socket
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from testkit.waiting import wait_until
from tests.processes import Service

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.usefixtures("worker_process")
@pytest.mark.parametrize(
    ("module", "extra", "last_event"),
    [
        ("order_starter", {"CHARGE_SECONDS": "0.2"}, "workflow result"),
        ("publisher", {"PUBLISHER_EVENTS": "30", "PUBLISHER_BATCH_SIZE": "7"}, "hub closed"),
        ("ticker_fast", {"TICKER_TICKS": "5", "TICKER_INTERVAL_SECONDS": "0.1"}, "final tick"),
    ],
)
def test_one_shot_services_exit_zero_with_json_logs(
    env: dict[str, str], tmp_path: Path, module: str, extra: dict[str, str], last_event: str
) -> None:
    extra = {**extra, "TICKER_WORKFLOW_ID": f"ticker-{tmp_path.name}"}
    service = Service(module, {**env, **extra}, tmp_path / f"{module}.log")
    service.start()
    assert service.wait() == 0, service.logs()[-5:]
    logs = service.logs()
    assert service.last()["event"] == last_event
    assert {line["service"] for line in logs} == {module.replace("_", "-")}
    assert all(line["timestamp"].endswith("Z") for line in logs)


def test_bad_configuration_exits_2_naming_the_variable(env: dict[str, str], tmp_path: Path) -> None:
    service = Service("worker", {**env, "PIPELINE_STEP_SECONDS": "soon"}, tmp_path / "w.log")
    service.start()
    assert service.wait() == 2
    (line,) = service.logs()
    assert line["event"] == "invalid configuration"
    assert line["error"].startswith("PIPELINE_STEP_SECONDS='soon' is not a number")


def _unreachable(tmp_path: Path, **env: str) -> tuple[str, Service]:
    """order-starter pointed at a port nothing listens on, run to its exit."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    settings = {"TEMPORAL_ADDRESS": address, "CONNECT_MAX_BACKOFF_SECONDS": "0.2", **env}
    service = Service("order_starter", settings, tmp_path / "o.log")
    service.start()
    assert service.wait() == 1
    return address, service


def test_unreachable_temporal_exits_1_after_bounded_retries(tmp_path: Path) -> None:
    address, service = _unreachable(tmp_path, CONNECT_ATTEMPTS="3")
    logs, last = service.logs(), service.last()
    assert [line["attempt"] for line in logs if "retrying" in line["event"]] == [1, 2]
    assert last["event"] == "giving up"
    assert last["cause"].startswith(f"cannot reach Temporal at {address} after 3 attempts")
    assert "\n" not in last["cause"]


@pytest.mark.usefixtures("worker_process")
def test_one_shot_services_exit_zero_twenty_times_each(env: dict[str, str], tmp_path: Path) -> None:
    """The job done, interpreter teardown can still abort with SIGABRT (exit 134).

    With the SDK's Rust threads alive at exit, CPython's finalizer sometimes
    dies in PyGILState_Release (temporalio/sdk-python#300); the runner leaves
    with os._exit after flushing, and this holds it to 0, every time.
    """
    runs = 20
    quick = {
        "CHARGE_SECONDS": "0",
        "PUBLISHER_EVENTS": "3",
        "TICKER_TICKS": "2",
        "TICKER_INTERVAL_SECONDS": "0",
        "TICKER_SLOW_DELAY_SECONDS": "0.05",
    }

    def loop(module: str) -> list[int]:
        codes = []
        for run in range(runs):
            own = {"TICKER_WORKFLOW_ID": f"{module}-{tmp_path.name}-{run}"}
            service = Service(module, {**env, **quick, **own}, tmp_path / f"{module}-{run}.log")
            service.start()
            codes.append(service.wait())
        return codes

    modules = ["order_starter", "publisher", "ticker_fast", "ticker_slow"]
    with ThreadPoolExecutor(len(modules)) as pool:
        results = dict(zip(modules, pool.map(loop, modules), strict=True))
    assert results == {module: [0] * runs for module in modules}


@pytest.mark.usefixtures("worker_process")
def test_a_one_shot_stopped_before_its_job_is_done_does_not_exit_zero(
    env: dict[str, str], tmp_path: Path
) -> None:
    order = Service("order_starter", {**env, "CHARGE_SECONDS": "30"}, tmp_path / "o.log")
    order.start()
    order.wait_for_log("progress")  # charging: the job is under way
    assert order.stop() == 143  # 128 + SIGTERM
    last = order.last()
    assert (last["event"], last["signal"]) == ("interrupted before finishing", "SIGTERM")


def test_a_namespace_that_does_not_exist_fails_at_once_naming_it(
    env: dict[str, str], tmp_path: Path
) -> None:
    """An answer retrying cannot change (a namespace, credentials) is not retried."""
    settings = {**env, "TEMPORAL_NAMESPACE": "no-such-namespace", "CONNECT_ATTEMPTS": "5"}
    service = Service("order_starter", settings, tmp_path / "o.log")
    service.start()
    assert service.wait() == 1
    assert not [line for line in service.logs() if "retrying" in line["event"]]
    assert service.last()["event"] == "giving up"
    assert "Namespace no-such-namespace is not found" in service.last()["cause"]


def test_the_worker_is_healthy_only_while_it_is_ready(env: dict[str, str], tmp_path: Path) -> None:
    health = tmp_path / "healthy"

    def probe() -> int:
        return subprocess.run(
            [sys.executable, "-m", "services.shared.health"],
            cwd=ROOT,
            env={"HEALTH_FILE": str(health)},
            capture_output=True,
            check=False,
        ).returncode

    worker = Service("worker", {**env, "HEALTH_FILE": str(health)}, tmp_path / "w.log")
    assert probe() == 1
    worker.start()
    worker.wait_for_log("worker ready")
    wait_until(lambda: probe() == 0, what="the healthcheck to pass", within=30)
    assert worker.stop() == 0
    assert probe() == 1
