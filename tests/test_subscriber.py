"""The subscriber as its own OS process: kills, refusals, gone and ended runs, lost servers.

Every assertion reads what an outside observer can: the ledger file (through
the same strict parser the chaos tools use), the process's exit code and its
JSON log lines.
"""

from __future__ import annotations

import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from contextlib import aclosing
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from chaos.subscriber import kill_and_resume, read, soak, verdict
from services.shared.ledger import End, Event, Ledger, Resume, Section, audit
from services.shared.models import FINAL_STAGE, STAGE_TOPIC, StageEvent
from testkit.devserver import dev_server, free_port
from testkit.waiting import eventually, wait_until
from tests.processes import Service, SubscriberProcess

ROOT = Path(__file__).resolve().parent.parent


def pipeline_subscriber(
    env: dict[str, str], tmp_path: Path, *, runs: int, **extra: str
) -> SubscriberProcess:
    """A subscriber on a short pipeline of its own: 5 stages x 3 steps + complete = 16 events."""
    pipeline = {
        "PIPELINE_WORKFLOW_ID": f"pipeline-{tmp_path.name}",
        "PIPELINE_STEP_SECONDS": "0.1",
        "PIPELINE_STEPS_PER_STAGE": "3",
        "PIPELINE_RUNS": str(runs),
        **extra,
    }
    return SubscriberProcess(
        {**env, **pipeline}, tmp_path / "subscriber.log", tmp_path / "events.jsonl"
    )


def _events(subscriber: SubscriberProcess) -> list[Event]:
    return [r for r in read(subscriber) or [] if isinstance(r, Event)]


Step = tuple[int, str, int, int]  # offset, stage, step, steps


def _recorded(subscriber: SubscriberProcess, run_id: str) -> list[Step]:
    """What the ledger holds of one run."""
    events = [e for e in _events(subscriber) if e.run_id == run_id]
    return [(e.offset, e.stage, e.step, e.steps) for e in events]


async def _published(client: Client, workflow_id: str, run_id: str) -> list[Step]:
    """The run's own stream, read by a reader of the test's, up to its terminal event."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    items = WorkflowStreamClient(handle, client=client).subscribe(
        STAGE_TOPIC, result_type=StageEvent, poll_cooldown=timedelta(milliseconds=20)
    )
    published: list[Step] = []
    async with aclosing(items) as stream:  # type: ignore[type-var]
        async for item in stream:
            published.append((item.offset, item.data.stage, item.data.step, item.data.steps))
            if item.data.stage == FINAL_STAGE:
                break
    return published


@pytest.mark.usefixtures("worker_process")
def test_subscriber_survives_sigkill_mid_stream(env: dict[str, str], tmp_path: Path) -> None:
    subscriber = pipeline_subscriber(env, tmp_path, runs=1)
    subscriber.start()
    kill = kill_and_resume(subscriber, down_s=1.5, right_after_event=True, say=print)
    assert subscriber.wait() == 0
    assert not kill.new_run and kill.resumed_at == kill.first_after == (kill.last_before or 0) + 1
    result = audit(read(subscriber) or [])
    assert result.ok and result.sections == 1
    assert [e.offset for e in _events(subscriber)] == list(range(16))
    assert subscriber.wait_for_log("resuming")["from_offset"] == kill.first_after


@pytest.mark.usefixtures("worker_process")
async def test_subscriber_soak_loses_and_repeats_nothing(
    client: Client, env: dict[str, str], tmp_path: Path
) -> None:
    """Judged against the runs' own streams: the ledger holds each run's events, in order,
    exactly once, up to where it stopped (every run it finished, in full)."""
    subscriber = pipeline_subscriber(env, tmp_path, runs=0)  # runs on until we stop it
    subscriber.start()
    report = soak(subscriber, 4, rng=random.Random(7), max_delay_s=2.0, max_down_s=1.5)
    print(verdict(report))
    assert subscriber.stop() == 0
    assert report.ok, verdict(report)
    runs = [r.run_id for r in read(subscriber) or [] if isinstance(r, Section)]
    workflow_id = f"pipeline-{tmp_path.name}"
    for number, run_id in enumerate(runs, start=1):
        recorded = _recorded(subscriber, run_id)
        published = await _published(client, workflow_id, run_id)
        last = number == len(runs)  # stopped mid-run, perhaps; every other one finished
        assert recorded == (published[: len(recorded)] if last else published), run_id


@pytest.mark.usefixtures("worker_process")
async def test_batched_fsync_keeps_exactly_once_under_sigkill_while_catching_up(
    client: Client, env: dict[str, str], tmp_path: Path
) -> None:
    """A backlog arrives in pages and is recorded a page per fsync; a kill mid-backlog loses none.

    Where the kill lands is set by the test, not by timing: the subscriber logs
    into a pipe of 4 KiB that the test reads only up to its first recorded
    batch. Past that, each batch it records logs a line of some 200 bytes, so
    it stops, blocked on its log, within 20 batches (of 1,000 at most) of the
    first: a backlog of 30,001 events is then always partly recorded at the kill.
    """
    steps = 6000  # 30,001 events, published at once: a backlog from the first poll
    subscriber = pipeline_subscriber(
        env, tmp_path, runs=1, PIPELINE_STEP_SECONDS="0", PIPELINE_STEPS_PER_STAGE=str(steps)
    )
    subscriber.start(log_pipe=4096)
    while subscriber.next_log_line()["event"] not in ("event", "caught up"):
        pass  # connected, following the new run, ...: until its first batch is in the ledger
    subscriber.kill()
    at_kill = _events(subscriber)
    print(f"recorded at the kill: {len(at_kill)} of {5 * steps + 1}")
    assert 0 < len(at_kill) < 5 * steps + 1, "killed with part of the backlog recorded"
    subscriber.start()
    assert subscriber.wait() == 0, subscriber.logs()[-3:]
    run_id = at_kill[0].run_id
    published = await _published(client, f"pipeline-{tmp_path.name}", run_id)
    assert len(published) == 5 * steps + 1
    assert _recorded(subscriber, run_id) == published, "every event once, in order"
    assert subscriber.wait_for_log("resuming")["from_offset"] == len(at_kill)


def test_corrupt_ledger_is_refused_with_the_reset_command(
    env: dict[str, str], tmp_path: Path
) -> None:
    ledger = tmp_path / "events.jsonl"
    ledger.write_text('{"kind":"section","workflow_id":"p","run_id":"r"}\nGARBAGE\n')
    subscriber = SubscriberProcess(env, tmp_path / "s.log", ledger)
    subscriber.start()
    assert subscriber.wait() == 2
    cause = subscriber.last()["cause"]
    assert str(ledger) in cause and "line 2" in cause and "make reset-subscriber" in cause
    assert ledger.read_text().endswith("GARBAGE\n")  # nothing was rewritten


def test_a_held_refusal_is_logged_once_stays_unhealthy_and_exits_2_when_stopped(
    env: dict[str, str], tmp_path: Path
) -> None:
    """Under a restart policy, exiting on bad input would only restart into it again."""
    ledger = tmp_path / "events.jsonl"
    ledger.write_text("GARBAGE\n")
    health = tmp_path / "healthy"
    held = {"ON_REFUSAL": "wait", "HEALTH_FILE": str(health)}
    subscriber = SubscriberProcess({**env, **held}, tmp_path / "s.log", ledger)
    subscriber.start()
    subscriber.wait_for_log("holding the refusal until stopped")
    assert subscriber.process is not None and subscriber.process.poll() is None  # still up
    probe = subprocess.run(
        [sys.executable, "-m", "services.shared.health"],
        cwd=ROOT,
        env={"HEALTH_FILE": str(health)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 1 and "not ready" in probe.stderr
    assert subscriber.stop() == 2
    refusals = [line for line in subscriber.logs() if line["event"] == "giving up"]
    assert len(refusals) == 1 and refusals[0]["exit_code"] == 2


@pytest.mark.usefixtures("worker_process")
def test_a_second_subscriber_on_the_same_ledger_is_refused_naming_the_first(
    env: dict[str, str], tmp_path: Path
) -> None:
    first = pipeline_subscriber(env, tmp_path, runs=0)
    first.start()
    wait_until(lambda: _events(first), what="the first subscriber's events", within=60)
    second = SubscriberProcess(env, tmp_path / "second.log", first.ledger)
    second.start()
    assert second.wait() == 2
    cause = second.last()["cause"]
    assert first.process is not None and f"pid {first.process.pid}" in cause
    assert "only one subscriber" in cause
    assert first.stop() == 0
    assert audit(read(first) or []).ok  # the refused one wrote nothing


@pytest.mark.usefixtures("worker_process")
def test_a_pinned_run_that_is_gone_is_ended_and_the_next_run_followed(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The ledger names a run this server never had (a wiped volume, another cluster)."""
    subscriber = pipeline_subscriber(env, tmp_path, runs=2)  # the gone one counts as ended
    workflow_id = f"pipeline-{tmp_path.name}"
    gone = str(uuid.uuid4())
    ledger = Ledger.open(subscriber.ledger)
    ledger.append(Section(workflow_id, gone))
    ledger.append(*[Event(workflow_id, gone, o, "validating", o + 1, 3) for o in range(2)])
    ledger.close()
    subscriber.start()
    assert subscriber.wait() == 0, subscriber.logs()[-3:]
    records = read(subscriber) or []
    (end,) = [r for r in records if isinstance(r, End)]
    assert (end.run_id, end.status) == (gone, "NOT_FOUND") and "not found" in end.why
    sections = [r.run_id for r in records if isinstance(r, Section)]
    assert sections[0] == gone and len(sections) == 2
    assert [e.offset for e in _events(subscriber) if e.run_id == sections[1]] == list(range(16))
    assert audit(records).ok
    assert subscriber.wait_for_log("pinned run is gone; moving on")["run_id"] == gone


@pytest.mark.usefixtures("worker_process")
async def test_a_terminated_run_gets_an_end_record_and_counts_as_finished(
    client: Client, env: dict[str, str], tmp_path: Path
) -> None:
    subscriber = pipeline_subscriber(env, tmp_path, runs=2, PIPELINE_STEP_SECONDS="1")
    subscriber.start()
    await eventually(lambda: _events(subscriber), what="a first event", within=60)
    first_run = _events(subscriber)[0].run_id
    await client.get_workflow_handle(f"pipeline-{tmp_path.name}", run_id=first_run).terminate()
    await eventually(
        lambda: len({e.run_id for e in _events(subscriber)}) == 2,
        what="events of the next run",
        within=60,
    )
    assert subscriber.stop() == 0
    records = read(subscriber) or []
    (end,) = [r for r in records if isinstance(r, End)]
    assert (end.run_id, end.status) == (first_run, "TERMINATED")
    assert audit(records).ok  # the end record closes the first section: not abandoned


async def test_subscriber_rides_out_a_server_restart_on_the_same_port_and_database(
    tmp_path: Path,
) -> None:
    """The same server comes back (same port, same SQLite file): no restart of ours needed."""
    port, database = free_port(), tmp_path / "temporal.db"
    env = {"TEMPORAL_ADDRESS": f"127.0.0.1:{port}", "TASK_QUEUE": "restart"}
    worker = Service("worker", env, tmp_path / "worker.log")
    subscriber = pipeline_subscriber(env, tmp_path, runs=1, PIPELINE_STEP_SECONDS="0.5")
    try:
        async with dev_server(port=port, database=database):
            worker.start()
            subscriber.start()
            await eventually(lambda: len(_events(subscriber)) >= 2, what="events", within=60)
        await eventually(
            lambda: any(line["event"] == "connection lost, retrying" for line in subscriber.logs()),
            what="the subscriber to notice the lost server",
            within=60,
        )
        async with dev_server(port=port, database=database):
            await eventually(_exited(subscriber), what="the run to finish", within=120)
    finally:
        worker.kill()
    assert subscriber.wait() == 0, subscriber.logs()[-3:]
    records = read(subscriber) or []
    assert audit(records).ok
    assert [e.offset for e in _events(subscriber)] == list(range(16))
    # In place: one attachment, one process; the reconnect happened inside it.
    assert len([r for r in records if isinstance(r, Resume)]) == 1
    assert any(line["event"] == "reconnected" for line in subscriber.logs())


async def test_subscriber_gives_up_after_its_reconnect_budget(tmp_path: Path) -> None:
    """A server that stays away: bounded, logged retries, then exit 1 with the cause."""
    env = {"TASK_QUEUE": "budget", "RECONNECT_ATTEMPTS": "2"}
    worker: Service | None = None
    subscriber: SubscriberProcess | None = None
    async with dev_server() as server:
        env["TEMPORAL_ADDRESS"] = server.address
        worker = Service("worker", env, tmp_path / "worker.log")
        worker.start()
        subscriber = pipeline_subscriber(env, tmp_path, runs=0, PIPELINE_STEP_SECONDS="0.5")
        subscriber.start()
        await eventually(lambda: _events(subscriber), what="a first event", within=60)
    try:
        await eventually(_exited(subscriber), what="the subscriber to give up", within=180)
    finally:
        worker.kill()
    assert subscriber.wait() == 1
    logs = subscriber.logs()
    retries = [line["attempt"] for line in logs if line["event"] == "connection lost, retrying"]
    assert retries == [1, 2]
    last = subscriber.last()
    assert last["event"] == "giving up"
    assert last["cause"].startswith("pipeline subscription: still failing after 2 retries")


def _exited(service: Service) -> Callable[[], bool]:
    return lambda: service.process is not None and service.process.poll() is not None
