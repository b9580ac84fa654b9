"""The compose stack under its own project name, torn down with its volumes."""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Error,
    Page,
    sync_playwright,
)

from testkit.devserver import free_port
from testkit.waiting import wait_until
from tests.e2e.cli import compose

ONE_SHOTS = ("order-starter", "publisher", "ticker-fast", "ticker-slow")


class Stack:
    """Read-only views of the running project: states and JSON logs."""

    def states(self) -> dict[str, dict[str, Any]]:
        out = compose("ps", "--all", "--format", "json").stdout
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        # `compose run` one-offs carry the service's name too; they are not the service.
        return {row["Service"]: row for row in rows if "oneoff=True" not in row["Labels"]}

    def logs(self, service: str) -> list[dict[str, Any]]:
        """Every line the service logged, as JSON (LOG_FORMAT=json is set for e2e)."""
        out = compose("logs", "--no-color", "--no-log-prefix", service).stdout
        return [json.loads(line) for line in out.splitlines() if line.startswith("{")]

    def wait_until(self, what: str, done: Any, timeout: float = 240) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if done():
                return
            time.sleep(1)
        raise AssertionError(f"gave up after {timeout:.0f} s waiting for {what}: {self.states()}")


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    saved = dict(os.environ)
    os.environ.update(
        COMPOSE_PROJECT_NAME=f"wfs-e2e-{uuid.uuid4().hex[:6]}",
        TEMPORAL_PORT="",  # empty: Docker picks a free loopback port
        TEMPORAL_UI_PORT="",
        # A free port, but a fixed one: the browser test restarts `web` and must find it
        # again (an empty value would give the new container another port).
        WEB_PORT=str(free_port()),
        LOG_FORMAT="json",
        # A pipeline run in half a minute, not two: several tests wait for a
        # whole run (or the next one) to be recorded, and the faults land
        # mid-run all the same.
        PIPELINE_STEP_SECONDS="0.5",
    )
    try:
        compose("up", "--detach", "--build", timeout=900)
        stack = Stack()
        stack.wait_until(
            "temporal to be healthy",
            lambda: stack.states().get("temporal", {}).get("Health") == "healthy",
        )
        yield stack
    finally:
        # Every service's log, for whoever reads a failed run (CI keeps nothing else).
        ARTIFACTS.parent.mkdir(parents=True, exist_ok=True)
        logged = compose("logs", "--no-color", "--timestamps", check=False, timeout=300).stdout
        (ARTIFACTS.parent / "compose.log").write_text(logged)
        compose("down", "--volumes", "--remove-orphans", check=False, timeout=300)
        os.environ.clear()
        os.environ.update(saved)


def make(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run a Make target as a user would, against this project; echo its output.

    ``env`` replaces the environment (a host without Python, say).
    """
    result = subprocess.run(
        ["make", "--no-print-directory", *args],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
        env=env,
    )
    print(result.stdout, result.stderr)
    return result


# -- The dashboard in a real browser (tests/e2e/test_web*.py) -----------------
# Debian's Chromium (`make browser` installs it), driven by Playwright; never a
# downloaded browser. The flags keep it off the network this machine closes.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Screenshots and the page's console, kept for whoever reads a failed run.
ARTIFACTS = Path(__file__).resolve().parents[2] / ".artifacts" / "web"


@pytest.fixture(scope="session")
def dashboard_url(stack: Stack) -> str:
    """The live dashboard of the e2e stack, through the edge, once the edge is healthy."""
    stack.wait_until(
        "edge to be healthy", lambda: stack.states().get("edge", {}).get("Health") == "healthy"
    )
    return "http://" + compose("port", "edge", "8000").stdout.strip()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield chromium
        finally:
            chromium.close()


# Connection failures while `web` restarts are the browser reporting what a test caused.
EXPECTED_WHILE_DOWN = ("net::ERR_", "Failed to load resource")


class Console:
    """What a page printed: its console errors and its uncaught exceptions."""

    def __init__(self, page: Page) -> None:
        self.errors: list[str] = []
        self.exceptions: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.exceptions.append(str(error)))

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def unexpected(self, *, web_restarted: bool = False) -> list[str]:
        """Every exception, and every console error a test did not cause."""
        allowed = EXPECTED_WHILE_DOWN if web_restarted else ()
        return self.exceptions + [e for e in self.errors if not e.startswith(allowed)]


@pytest.fixture
def tabs(browser: Browser, dashboard_url: str) -> Iterator[BrowserContext]:
    """One browser profile: its tabs share the six connections a browser keeps per host."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, base_url=dashboard_url)
    try:
        yield context
    finally:
        for n, page in enumerate(context.pages):
            page.screenshot(path=ARTIFACTS / f"last-tab{n}.png", full_page=True)
        context.close()


def shot(page: Page, name: str) -> None:
    """A full-page screenshot and the page's window.dashboard, into .artifacts/web/."""
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)
    try:
        state = page.evaluate("JSON.stringify(dashboard)")
    except Error as err:
        state = json.dumps({"unreadable": str(err)})
    (ARTIFACTS / f"{name}.json").write_text(state)


def stream_faults(page: Page) -> list[str]:
    """What a page's streams missed or received twice: per panel and chain, in arrival order.

    Every item carries its chain and offset (``dashboard.received``); offsets of
    one chain must go 0, 1, 2, ... except across a gap the server reported as
    truncated (``dashboard.gaps``).
    """
    state: dict[str, Any] = page.evaluate("({received: dashboard.received, gaps: dashboard.gaps})")
    faults = []
    for key, ids in state["received"].items():
        skips = {(g["from_offset"], g["to_offset"]) for g in state["gaps"].get(key, [])}
        expected: dict[str, int] = {}
        for entry in ids:
            chain, _, raw = entry.rpartition(":")
            offset, want = int(raw), expected.get(chain, 0)
            if offset < want:
                faults.append(f"{key}: {entry} again (expected offset {want})")
            elif offset > want and not any(lo <= want and hi == offset for lo, hi in skips):
                faults.append(f"{key}: {chain}:{want}..{offset - 1} missed before {entry}")
            expected[chain] = max(want, offset + 1)
    return faults


def until(page: Page, condition: str, *, what: str, within: float = 60) -> Any:
    """Poll a JavaScript expression on ``page`` until it is truthy; return its value.

    Not ``page.wait_for_function``: that compiles a string inside the page, which
    the dashboard's Content-Security-Policy (no 'unsafe-eval') rightly refuses.
    """
    return wait_until(lambda: page.evaluate(condition), what=what, within=within, interval=0.2)
