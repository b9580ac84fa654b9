"""The dashboard in headless Chromium against the compose stack, as a person would use it.

Place an order and watch it complete; restart the ``web`` container while the
pipeline streams and check the page resumed by itself, with no gap and no
duplicate; run ``make chaos-subscriber`` and watch the ledger panel record
the resume. Screenshots and the page's state are kept in .artifacts/web/.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.cli import compose
from tests.e2e.conftest import ARTIFACTS, Console, Stack, make, shot, stream_faults, until

pytestmark = pytest.mark.e2e

MINUTE = 60_000  # Playwright waits in milliseconds
# Everything the web service may say in this run: start, streams, writes, stop.
_WEB_LOG_EVENTS = {
    "connected",
    "dashboard ready",
    "stream opened",
    "stream closed",
    "stream ended",
    "viewer left",  # once per page closed or reloaded (the restart below reloads one)
    "run continued as new",
    "order placed",
    "published",
    "dashboard publish done",
    "assistant asked",
    "stopped",
}


def test_the_dashboard_streams_resumes_and_shows_the_ledger(
    stack: Stack, tabs: BrowserContext
) -> None:
    page = tabs.new_page()
    console = Console(page)
    page.goto("/")
    expect(page.locator("#pipeline .head .conn")).to_have_attribute(
        "data-state", "live", timeout=MINUTE
    )

    # 1. An order, placed from the page, streams to `complete` on the page's one connection.
    page.click("[data-action=order]")
    expect(page.locator("#orders li[data-state=complete]")).to_have_count(1, timeout=MINUTE)
    expect(page.locator("#orders .order-head .conn")).to_have_attribute("data-state", "ended")
    shot(page, "1-order")
    assert console.unexpected() == []

    # 2. Restart `web` while the pipeline streams; the page resumes by itself.
    chain, before = _mid_run(page)
    connections = len(_log(page, "pipeline"))
    assert make("web").returncode == 0
    resumed = _connection_after(page, "pipeline", connections)
    of_chain = f"dashboard.received.pipeline.filter(id => id.startsWith('{chain}:'))"
    until(page, f"{of_chain}.length >= {before + 5}", what="5 more pipeline events, resumed")
    offsets = _offsets(page, chain)
    assert offsets == list(range(len(offsets))), f"gap or duplicate: {offsets}"
    assert resumed["chain"] == chain and resumed["resumed_after"] in offsets
    assert stream_faults(page) == []
    # It said what it was doing meanwhile, and came back by itself with backoff.
    said = [c["state"] for c in page.evaluate("dashboard.connection")]
    assert "reconnecting" in said and said[-1] == "live", said
    expect(page.locator("#pipeline .head .conn")).to_contain_text("resumed after")
    shot(page, "2-resumed")

    # 3. The subscriber is killed and resumes; the ledger panel shows that resume.
    since = page.evaluate("Date.now()")
    assert make("chaos-subscriber").returncode == 0
    until(
        page,
        f"(dashboard.ledger?.resumes ?? []).some(r => Date.parse(r.at) > {since})",
        what="the ledger panel to show the subscriber's resume",
    )
    expect(page.locator("#pipeline .resumes li").first).to_contain_text("resumed at offset")
    shot(page, "3-ledger")
    assert console.unexpected(web_restarted=True) == []

    # What `docker compose logs web` showed meanwhile: no error, and nothing per heartbeat.
    lines = stack.logs("web")
    (ARTIFACTS / "web.log.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    assert [line for line in lines if line["level"] in ("error", "critical")] == []
    assert {line["event"] for line in lines} <= _WEB_LOG_EVENTS, {line["event"] for line in lines}


def test_the_dashboard_is_loopback_only_and_not_root(stack: Stack, dashboard_url: str) -> None:
    host, _, _ = dashboard_url.removeprefix("http://").rpartition(":")
    assert host == "127.0.0.1"
    assert compose("exec", "-T", "web", "id", "-u").stdout.strip() != "0"
    # The ledger volume is mounted read-only: the dashboard can never damage it.
    touched = compose("exec", "-T", "web", "touch", "/data/x", check=False)
    assert touched.returncode != 0 and "Read-only file system" in touched.stderr


def _mid_run(page: Page) -> tuple[str, int]:
    """Wait for a pipeline run with a few events in and most still to come."""
    chain, count = until(
        page,
        """(() => {
            const ids = dashboard.received.pipeline ?? [];
            if (!ids.length) return null;
            const chain = ids.at(-1).split(":")[0];
            const count = ids.filter(id => id.startsWith(chain + ":")).length;
            return count >= 3 && count <= 35 ? [chain, count] : null;
        })()""",
        what="a pipeline run a few events in",
        within=180,
    )
    return str(chain), int(count)


def _log(page: Page, key: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = page.evaluate(f"dashboard.connections['{key}']")
    return entries


def _connection_after(page: Page, key: str, seen: int) -> dict[str, Any]:
    """The first "connected" entry of the page's connection log after entry ``seen``."""
    entry: dict[str, Any] = until(
        page,
        f"dashboard.connections['{key}'].slice({seen}).find(c => c.state === 'connected')",
        what=f"the page to connect {key} again",
        within=120,
    )
    return entry


def _offsets(page: Page, chain: str) -> list[int]:
    ids: list[str] = page.evaluate("dashboard.received.pipeline")
    return [int(i.rsplit(":", 1)[1]) for i in ids if i.startswith(f"{chain}:")]
