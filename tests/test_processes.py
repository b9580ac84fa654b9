"""Every service as its own OS process: exit codes, JSON logs, and a SIGKILLed subscriber."""

from __future__ import annotations

import random
import socket
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from chaos.subscriber import kill_and_resume, read, soak, verdict
from services.shared.ledger import audit
from tests.processes import Service, SubscriberProcess


@pytest.fixture
def env(temporal_address: str, task_queue: str) -> dict[str, str]:
    return {"TEMPORAL_ADDRESS": temporal_address, "TASK_QUEUE": task_queue}


@pytest.fixture
def worker_process(env: dict[str, str], tmp_path: Path) -> Iterator[Service]:
    worker = Service("worker", env, tmp_path / "worker.log")
    worker.start()
    worker.wait_for_log("worker ready")
    yield worker
    assert worker.stop() == 0, "SIGTERM must drain the worker and exit 0"
    assert worker.wait_for_log("stopped")["signal"] == "SIGTERM"


def _pipeline_subscriber(env: dict[str, str], tmp_path: Path, *, runs: int) -> SubscriberProcess:
    """A subscriber on a short pipeline (16 events a run) of its own."""
    pipeline = {
        "PIPELINE_WORKFLOW_ID": f"pipeline-{tmp_path.name}",
        "PIPELINE_STEP_SECONDS": "0.1",
        "PIPELINE_STEPS_PER_STAGE": "3",
        "PIPELINE_RUNS": str(runs),
    }
    return SubscriberProcess(
        {**env, **pipeline}, tmp_path / "subscriber.log", tmp_path / "events.jsonl"
    )


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
    assert logs[-1]["event"] == last_event
    assert {line["service"] for line in logs} == {module.replace("_", "-")}
    assert all(line["timestamp"].endswith("Z") for line in logs)


@pytest.mark.usefixtures("worker_process")
def test_subscriber_survives_sigkill_mid_stream(env: dict[str, str], tmp_path: Path) -> None:
    subscriber = _pipeline_subscriber(env, tmp_path, runs=1)
    subscriber.start()
    kill = kill_and_resume(subscriber, down_s=1.5, right_after_event=True, say=print)
    assert not kill.new_run and kill.first_after == (kill.last_before or 0) + 1
    assert subscriber.wait() == 0
    records = read(subscriber) or []
    result = audit(records)
    assert result.ok and result.sections == 1 and result.restarts == 2
    offsets = [r["offset"] for r in records if r["kind"] == "event"]
    assert offsets == list(range(16))
    assert subscriber.wait_for_log("resuming")["from_offset"] == kill.first_after


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
    logs = service.logs()
    assert [line["attempt"] for line in logs if "retrying" in line["event"]] == [1, 2]
    assert logs[-1]["event"] == "giving up"
    assert logs[-1]["cause"].startswith(f"cannot reach Temporal at {address} after 3 attempts")
    assert "\n" not in logs[-1]["cause"]


def test_corrupt_ledger_is_refused_with_the_reset_command(
    env: dict[str, str], tmp_path: Path
) -> None:
    ledger = tmp_path / "events.jsonl"
    ledger.write_text('{"kind":"section","workflow_id":"p","run_id":"r"}\nGARBAGE\n')
    subscriber = SubscriberProcess(env, tmp_path / "s.log", ledger)
    subscriber.start()
    assert subscriber.wait() == 2
    cause = subscriber.logs()[-1]["cause"]
    assert str(ledger) in cause and "line 2" in cause and "make reset-subscriber" in cause
    assert ledger.read_text().endswith("GARBAGE\n")  # nothing was rewritten


@pytest.mark.usefixtures("worker_process")
def test_subscriber_soak_loses_and_repeats_nothing(env: dict[str, str], tmp_path: Path) -> None:
    subscriber = _pipeline_subscriber(env, tmp_path, runs=0)  # runs on until we stop it
    subscriber.start()
    report = soak(subscriber, 4, rng=random.Random(7), max_delay_s=2.0, max_down_s=1.5)
    print(verdict(report))
    assert subscriber.stop() == 0
    assert report.ok, verdict(report)
    assert len(report.kills) == 4 and report.audit.restarts >= 5


@pytest.mark.usefixtures("worker_process")
def test_one_shot_services_exit_zero_twenty_times_each(env: dict[str, str], tmp_path: Path) -> None:
    """Pitfall 1: interpreter teardown can abort (exit 134) after the job is done."""
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


def test_api_key_never_reaches_the_logs(tmp_path: Path) -> None:
    secret = "tk-" + uuid.uuid4().hex
    _, service = _unreachable(tmp_path, CONNECT_ATTEMPTS="2", TEMPORAL_API_KEY=secret)
    text = service.log_path.read_text()
    assert "giving up" in text and secret not in text
