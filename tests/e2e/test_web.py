"""The dashboard in headless Chromium against the compose stack, as a person would use it.

Place an order and watch it complete; restart the ``web`` container while the
pipeline streams and check the page resumed by itself, with no gap and no
duplicate; run ``make chaos-subscriber`` and watch the ledger panel record
the resume. Screenshots and the page's console are kept in .artifacts/web/.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, expect

from tests.e2e.cli import compose
from tests.e2e.conftest import ARTIFACTS, Stack, make

pytestmark = pytest.mark.e2e

MINUTE = 60_000  # Playwright waits in milliseconds
# Everything the web service may say in this run: start, streams, writes, stop.
_WEB_LOG_EVENTS = {
    "connected",
    "dashboard ready",
    "stream opened",
    "stream closed",
    "stream ended",
    "run continued as new",
    "order placed",
    "published",
    "stopped",
}
# Connection failures while `web` restarts are the browser reporting what we caused.
_EXPECTED_WHILE_DOWN = ("net::ERR_", "Failed to load resource")


class Console:
    """What the page printed: its console errors and its uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.exceptions: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.exceptions.append(str(error)))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)


@pytest.fixture
def page(browser: Browser, dashboard_url: str) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(dashboard_url)
    try:
        yield page
    finally:
        page.screenshot(path=ARTIFACTS / "last.png", full_page=True)
        context.close()


def test_the_dashboard_streams_resumes_and_shows_the_ledger(stack: Stack, page: Page) -> None:
    console = Console(page)
    expect(page.locator("#pipeline .head .conn")).to_have_attribute(
        "data-state", "live", timeout=MINUTE
    )

    # 1. An order, placed from the page, streams to `complete`.
    page.click("[data-action=order]")
    expect(page.locator("#orders li[data-state=complete]")).to_have_count(1, timeout=MINUTE)
    expect(page.locator("#orders .order-head .conn")).to_have_attribute("data-state", "ended")
    _shot(page, "1-order")
    assert console.errors == [] and console.exceptions == []

    # 2. Restart `web` while the pipeline streams; the page resumes by itself.
    chain, before = _mid_run(page)
    connections = len(_log(page, "pipeline"))
    assert make("web").returncode == 0
    resumed = _connection_after(page, "pipeline", connections)
    of_chain = f"dashboard.received.pipeline.filter(id => id.startsWith('{chain}:'))"
    page.wait_for_function(f"{of_chain}.length >= {before + 5}", timeout=MINUTE)
    offsets = _offsets(page, chain)
    assert offsets == list(range(len(offsets))), f"gap or duplicate: {offsets}"
    assert resumed["chain"] == chain and resumed["resumed_after"] in offsets
    _shot(page, "2-resumed")

    # 3. The subscriber is killed and resumes; the ledger panel shows that resume.
    since = page.evaluate("Date.now()")
    assert make("chaos-subscriber").returncode == 0
    page.wait_for_function(
        f"(dashboard.ledger?.resumes ?? []).some(r => Date.parse(r.at) > {since})",
        timeout=MINUTE,
    )
    expect(page.locator("#pipeline .resumes li").first).to_contain_text("resumed at offset")
    _shot(page, "3-ledger")

    # 4. The README's picture: every panel busy.
    page.click("[data-action=ticker]")
    page.click("[data-action=publish]")
    page.wait_for_function("dashboard.jumps.length >= 1", timeout=2 * MINUTE)
    page.wait_for_function("dashboard.received.hub.length >= 9", timeout=MINUTE)  # 8 and a final
    _shot(page, "4-dashboard")
    assert console.exceptions == []
    unexpected = [e for e in console.errors if not e.startswith(_EXPECTED_WHILE_DOWN)]
    assert unexpected == [], unexpected

    # What `docker compose logs web` showed meanwhile: no error, and nothing per heartbeat.
    lines = stack.logs("web")
    (ARTIFACTS / "web.log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [line for line in lines if line["level"] in ("error", "critical")] == []
    assert {line["event"] for line in lines} <= _WEB_LOG_EVENTS, {line["event"] for line in lines}


def test_the_dashboard_is_loopback_only_and_not_root(stack: Stack, dashboard_url: str) -> None:
    host, _, _ = compose("port", "web", "8000").stdout.strip().rpartition(":")
    assert host == "127.0.0.1"
    assert compose("exec", "-T", "web", "id", "-u").stdout.strip() != "0"
    # The ledger volume is mounted read-only: the dashboard can never damage it.
    touched = compose("exec", "-T", "web", "touch", "/data/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr


def _mid_run(page: Page) -> tuple[str, int]:
    """Wait for a pipeline run with a few events in and most still to come."""
    handle = page.wait_for_function(
        """() => {
            const ids = dashboard.received.pipeline;
            if (!ids.length) return null;
            const chain = ids.at(-1).split(":")[0];
            const count = ids.filter(id => id.startsWith(chain + ":")).length;
            return count >= 3 && count <= 35 ? [chain, count] : null;
        }""",
        timeout=3 * MINUTE,
    )
    chain, count = handle.json_value()
    return str(chain), int(count)


def _log(page: Page, key: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = page.evaluate(f"dashboard.connections['{key}']")
    return entries


def _connection_after(page: Page, key: str, seen: int) -> dict[str, Any]:
    """The first "connected" entry of the page's connection log after entry ``seen``."""
    handle = page.wait_for_function(
        f"""() => dashboard.connections['{key}'].slice({seen})
                 .find(c => c.state === 'connected') ?? null""",
        timeout=2 * MINUTE,
    )
    entry: dict[str, Any] = handle.json_value()
    return entry


def _offsets(page: Page, chain: str) -> list[int]:
    ids: list[str] = page.evaluate("dashboard.received.pipeline")
    return [int(i.rsplit(":", 1)[1]) for i in ids if i.startswith(f"{chain}:")]


def _shot(page: Page, name: str) -> None:
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    try:
        state = page.evaluate("JSON.stringify(dashboard)")
    except Error as err:
        state = json.dumps({"unreadable": str(err)})
    (ARTIFACTS / f"{name}.json").write_text(state)
