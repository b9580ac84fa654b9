"""Five tabs of the dashboard at once, in one Chromium profile, against the compose stack.

A browser keeps six HTTP/1.1 connections per host for all its tabs. With an
EventSource per panel, a fourth tab stayed on "connecting" and its fetches
hung; with one connection per page, five tabs stream side by side. Each tab
must go live, see every stream advance, get its fetches answered, and miss
or repeat nothing; the writes made from one tab show in all of them.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.e2e.conftest import ARTIFACTS, Console, Stack, shot, stream_faults, until

pytestmark = pytest.mark.e2e

MINUTE = 60_000
TABS = 5
FIXED = ("pipeline", "hub", "ticker", "assistant")  # the panels every tab follows
PROMPT = "Five tabs are watching: how does one connection carry every panel's stream?"


def test_five_tabs_stream_at_once(stack: Stack, tabs: BrowserContext) -> None:
    pages = [tabs.new_page() for _ in range(TABS)]
    consoles = [Console(page) for page in pages]
    for page in pages:
        page.goto("/")

    # Every tab connects: no badge stays on "connecting", in any panel of any tab.
    for page in pages:
        until(page, "dashboard.connection.some(c => c.state === 'live')", what="a tab to go live")
        for panel in FIXED:
            badge = page.locator(f"#{panel} .head .conn")
            expect(badge).not_to_have_attribute("data-state", "connecting", timeout=MINUTE)
            expect(badge).not_to_have_attribute("data-state", "reconnecting")
    counts = [_counts(page) for page in pages]

    # Writes from four different tabs; each tab must see the shared streams advance.
    pages[0].click("[data-action=ticker]")
    config: dict[str, Any] = pages[1].evaluate("fetch('/api/config').then(r => r.json())")
    hub_events = int(config["hub"]["events"])
    pages[1].click("[data-action=publish]")
    pages[2].click("[data-action=order]")
    pages[3].fill("#assistant textarea", PROMPT)
    pages[3].click("#assistant button[type=submit]")

    for page, before in zip(pages, counts, strict=True):
        wanted = {"ticker": 5, "hub": hub_events + 1, "pipeline": 3, "assistant": 3}
        for key, more in wanted.items():
            until(
                page,
                f"(dashboard.received.{key} ?? []).length >= {before[key] + more}",
                what=f"{more} more {key} items in every tab",
                within=180,
            )
        expect(page.locator("#assistant li.turn").last).to_have_attribute(
            "data-state", "complete", timeout=2 * MINUTE
        )
    expect(pages[2].locator("#orders li[data-state=complete]")).to_have_count(1, timeout=MINUTE)

    # The same answer, exactly, in every tab; and each tab checked it against the result.
    answers = [_last_turn(page) for page in pages]
    assert all(a["prompt"] == PROMPT and a["matched"] is True for a in answers), answers
    assert len({a["shown"] for a in answers}) == 1, [a["shown"] for a in answers]

    for n, page in enumerate(pages):
        shot(page, f"tabs-{n}")
    _side_by_side(pages)

    for n, (page, console) in enumerate(zip(pages, consoles, strict=True)):
        # Nothing missed, nothing twice, in every stream of every tab.
        assert stream_faults(page) == [], (n, stream_faults(page))
        # One connection per page, and it never had to reconnect.
        said = {c["state"] for c in page.evaluate("dashboard.connection")}
        assert said <= {"connecting", "live"}, (n, page.evaluate("dashboard.connection"))
        assert set(FIXED) <= set(page.evaluate("Object.keys(dashboard.received)"))
        # Its fetches were answered: the ledger read, no request timed out or failed.
        assert page.evaluate("dashboard.ledger") is not None
        assert page.evaluate("dashboard.errors") == [], (n, page.evaluate("dashboard.errors"))
        assert console.unexpected() == [], (n, console.unexpected())


def _counts(page: Page) -> dict[str, int]:
    counts: dict[str, int] = page.evaluate(
        "Object.fromEntries(['pipeline','hub','ticker','assistant']"
        ".map(k => [k, (dashboard.received[k] ?? []).length]))"
    )
    return counts


def _last_turn(page: Page) -> dict[str, Any]:
    turn: dict[str, Any] = page.evaluate(
        "dashboard.turns[Math.max(...Object.keys(dashboard.turns).map(Number))]"
    )
    return turn


def _side_by_side(pages: list[Page]) -> None:
    """The tabs' screenshots in one picture, so a reader sees them together."""
    first = pages[0]
    shots = [ARTIFACTS / f"tabs-{n}.png" for n in range(len(pages))]
    tiles = "".join(
        f'<img src="data:image/png;base64,{_b64(path)}" style="width:33.3%">' for path in shots
    )
    view = first.context.new_page()
    view.set_viewport_size({"width": 2800, "height": 1100})
    view.set_content(
        f'<body style="margin:0;display:flex;flex-wrap:wrap;align-items:flex-start">{tiles}</body>'
    )
    view.screenshot(path=ARTIFACTS / "tabs-all.png", full_page=True)
    view.close()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()
