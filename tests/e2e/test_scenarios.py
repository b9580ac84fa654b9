"""`make up` as a user sees it: every scenario's output and exit code, in any test order."""

from __future__ import annotations

from typing import Any

import pytest

from services.shared.ledger import Event
from services.shared.models import FINAL_STAGE, WORK_STAGES
from tests.e2e.cli import compose, subscriber_ledger
from tests.e2e.conftest import ONE_SHOTS, Stack

pytestmark = pytest.mark.e2e


def _events(stack: Stack, service: str, event: str) -> list[dict[str, Any]]:
    return [line for line in stack.logs(service) if line["event"] == event]


def test_one_shot_scenarios_exit_zero(stack: Stack) -> None:
    stack.wait_until(
        "the one-shot scenarios to finish",
        lambda: all(stack.states().get(s, {}).get("State") == "exited" for s in ONE_SHOTS),
    )
    states = stack.states()
    assert {s: states[s]["ExitCode"] for s in ONE_SHOTS} == dict.fromkeys(ONE_SHOTS, 0)
    assert {states[s]["State"] for s in ("temporal", "worker", "subscriber")} == {"running"}


def test_order_scenario_prints_the_seed_sequence(stack: Stack) -> None:
    lines = stack.logs("order-starter")
    stream = [(e["event"], e.get("state") or e.get("message")) for e in lines if "offset" in e]
    assert [topic for topic, _ in stream] == [
        "status",
        "progress",
        "progress",
        "status",
        "progress",
        "status",
    ]
    what = [str(text) for _, text in stream]
    assert what[:4] == ["received", "charging card...", "card charged", "shipped"]
    assert what[4].startswith("charge id: charge-order-") and what[5] == "complete"
    assert lines[-1]["event"] == "workflow result"


def test_publisher_scenario_delivers_every_headline(stack: Stack) -> None:
    headlines = _events(stack, "publisher", "headline")
    assert [h["offset"] for h in headlines] == list(range(8))
    (closed,) = _events(stack, "publisher", "hub closed")
    assert closed["published"] == closed["received"] == 8


def test_ticker_scenario_fast_sees_all_slow_jumps(stack: Stack) -> None:
    fast = [t["offset"] for t in _events(stack, "ticker-fast", "tick")]
    assert fast == list(range(40))
    jumps = _events(stack, "ticker-slow", "jumped past truncated ticks")
    assert jumps and all(j["dropped"] == j["to_offset"] - j["from_offset"] for j in jumps)
    slow = [t["offset"] for t in _events(stack, "ticker-slow", "tick")]
    assert slow[-1] == 39 and slow == sorted(set(slow))


def test_subscriber_records_every_pipeline_run_in_order(stack: Stack) -> None:
    """Read from its ledger, whatever ran before: kills, restarts, later runs."""
    stack.wait_until("subscriber events", lambda: len(_ledger_events()) >= 3)
    runs: dict[str, list[Event]] = {}
    for event in _ledger_events():
        runs.setdefault(event.run_id, []).append(event)
    order = [*WORK_STAGES, FINAL_STAGE]
    for events in runs.values():
        assert [e.offset for e in events] == list(range(len(events)))
        ranks = [order.index(e.stage) for e in events]
        assert ranks == sorted(ranks)


def _ledger_events() -> list[Event]:
    return [r for r in subscriber_ledger() if isinstance(r, Event)]


def test_ports_are_loopback_and_containers_are_not_root(stack: Stack) -> None:
    for port in ("7233", "8233"):
        host, _, _ = compose("port", "temporal", port).stdout.strip().rpartition(":")
        assert host == "127.0.0.1"
    for service in ("temporal", "worker", "subscriber"):
        assert compose("exec", "-T", service, "id", "-u").stdout.strip() != "0"
