"""The Assistant panel in Chromium against the compose stack, through an llm-worker kill.

Ask a question from the page and watch the answer stream; queue more, and
run ``make chaos-llm`` (as a host with no Python would) while they stream.
The kill lands in one of the page's turns; that turn's attempt 1 must be
shown struck out with "attempt 2 started over", and every turn's text on the
page must equal the workflow's result, byte for byte: the ``stream_completion``
activity's result as the workflow history records it (read here with the
Temporal client, not through the web).
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect
from temporalio.client import Client

from services.llm import history
from services.shared.converter import DATA_CONVERTER
from services.shared.models import Answer
from tests.e2e.cli import compose
from tests.e2e.conftest import ARTIFACTS, Console, Stack, make, shot, stream_faults, until
from tests.e2e.test_chaos import CALLED, bare_host

pytestmark = pytest.mark.e2e
__all__ = ["bare_host"]  # the fixture: a host with Docker, Compose and make, and no Python

MINUTE = 60_000
# Questions queued per round: the conversation answers them one after another,
# so its answers stream for a while and chaos-llm's kill lands inside one.
QUEUED = 6
ROUNDS = 3  # a kill can fall between two turns; then the page had nothing to rewind


def test_the_assistant_panel_streams_and_rewinds_through_chaos_llm(
    stack: Stack, tabs: BrowserContext, bare_host: dict[str, str]
) -> None:
    stack.wait_until(
        "the llm-worker to be healthy",
        lambda: stack.states().get("llm-worker", {}).get("Health") == "healthy",
    )
    page = tabs.new_page()
    console = Console(page)
    page.goto("/")
    panel = page.locator("#assistant")
    expect(panel.locator(".head .conn")).not_to_have_attribute(
        "data-state", "connecting", timeout=MINUTE
    )
    config: dict[str, Any] = page.evaluate("fetch('/api/config').then(r => r.json())")
    expect(panel.locator("[data-field=model]")).to_have_text(config["assistant"]["model"])
    conversation = config["assistant"]["workflow_id"]

    # 1. A question: its answer grows on the page as it streams, then is checked.
    first = _ask(page, "How does the page keep a streamed answer exact?")
    until(
        page,
        f"dashboard.turns[{first}]?.state === 'streaming' && dashboard.turns[{first}].grew >= 3",
        what="the first answer to grow on the page, three times, as it streams",
    )
    shot(page, "assistant-1-streaming")
    _wait_complete(page, [first])

    # 2. Questions queued, and the llm-worker killed while they stream.
    asked, retried = [first], []
    for round_ in range(1, ROUNDS + 1):
        queued = [
            _ask(page, f"Round {round_}, question {n}: what if a worker dies?")
            for n in range(1, QUEUED + 1)
        ]
        asked += queued
        until(page, f"dashboard.turns[{queued[0]}]?.grew >= 1", what="the queue to stream")
        out = make("chaos-llm", env=bare_host)
        assert CALLED not in out.stdout + out.stderr
        assert out.returncode == 0 and "verdict: PASS" in out.stdout, out.stdout[-3000:]
        _wait_complete(page, queued)
        recorded = _answers(conversation)
        retried = [t for t in queued if recorded[t].attempt >= 2]
        if retried:
            break
    assert retried, f"in {ROUNDS} rounds no turn of the page's conversation was killed mid-answer"
    shot(page, "assistant-2-rewound")

    # 3. What the page shows equals the workflow's result, for every turn it asked.
    recorded = _answers(conversation)
    turns: dict[str, dict[str, Any]] = page.evaluate("dashboard.turns")
    for turn in asked:
        shown = turns[str(turn)]
        assert shown["state"] == "complete" and shown["matched"] is True, (turn, shown)
        assert shown["shown"] == recorded[turn].text, turn
        dom = panel.locator(f"li.turn[data-turn='{turn}'] .answer").text_content()
        assert dom == recorded[turn].text, turn
    # ... and it showed the rewind: attempt 1 struck out, "attempt 2 started over".
    for turn in retried:
        attempt = recorded[turn].attempt
        assert turns[str(turn)]["rewind_shown"] >= 1, turns[str(turn)]
        view = panel.locator(f"li.turn[data-turn='{turn}']")
        expect(view.locator(".rewind del").first).to_be_visible()
        expect(view.locator(".rewind .note").last).to_contain_text(
            f"attempt {attempt} started over: discarded"
        )
        expect(view.locator(".turn-meta")).to_contain_text("equals the workflow's result")
    assert stream_faults(page) == []

    # 4. The README's picture (docs/dashboard.png): every panel busy, the rewind in sight.
    page.click("[data-action=order]")
    page.click("[data-action=ticker]")
    page.click("[data-action=publish]")
    expect(page.locator("#orders li[data-state=complete]")).to_have_count(1, timeout=MINUTE)
    until(
        page,
        "document.querySelectorAll('#ticker [data-lane=fast] .seen').length >= 12",
        what="a dozen ticks of the new run on the page",
    )
    panel.locator(f"li.turn[data-turn='{retried[0]}']").scroll_into_view_if_needed()
    panel.screenshot(path=ARTIFACTS / "assistant-panel.png")
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "dashboard")
    assert page.evaluate("dashboard.errors") == []
    assert console.unexpected() == []


def _ask(page: Page, prompt: str) -> int:
    """Ask from the page's prompt box; the turn number the server gave it."""
    before = int(page.evaluate("dashboard.asked.length"))
    page.fill("#assistant textarea", prompt)
    page.press("#assistant textarea", "Enter")
    until(page, f"dashboard.asked.length > {before}", what=f"an answer to asking {prompt!r}")
    turn: int = page.evaluate(f"dashboard.asked[{before}].turn")
    return turn


def _wait_complete(page: Page, turns: list[int]) -> None:
    for turn in turns:
        until(
            page,
            f"['complete', 'failed'].includes(dashboard.turns[{turn}]?.state)",
            what=f"turn {turn} to end on the page",
            within=180,
        )


def _answers(conversation: str) -> dict[int, Answer]:
    """Each turn's result, from the workflow history (the server's record, not the stream)."""
    address = compose("port", "temporal", "7233").stdout.strip()

    async def read() -> dict[int, Answer]:
        client = await Client.connect(address, data_converter=DATA_CONVERTER)
        return (await history.read(client, conversation)).answers

    # Playwright's sync API runs an event loop in this thread: the client gets one of its own.
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, read()).result(timeout=120)
