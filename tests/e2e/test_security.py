"""Security defaults at the container edge: an unwritable volume, and credentials kept out."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.e2e.cli import compose, docker
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e


def test_unwritable_data_volume_is_refused(stack: Stack) -> None:
    run = compose(
        "run",
        "--rm",
        "--no-deps",
        "--user",
        "12345",
        "--env",
        "LOG_FORMAT=json",
        # Compose makes the subscriber hold a refusal (ON_REFUSAL=wait); this run must end.
        "--env",
        "ON_REFUSAL=exit",
        "subscriber",
        check=False,
    )
    assert run.returncode == 2
    cause = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")][-1]
    assert "/data/events.jsonl is not writable by uid 12345" in cause["cause"]


def test_api_key_stays_out_of_logs_and_image(stack: Stack) -> None:
    secret = "tk-" + uuid.uuid4().hex
    run = compose(
        "run",
        "--rm",
        "--no-deps",
        "--env",
        f"TEMPORAL_API_KEY={secret}",
        "--env",
        "TEMPORAL_ADDRESS=127.0.0.1:1",
        "--env",
        "CONNECT_ATTEMPTS=2",
        "order-starter",
        check=False,
    )
    assert run.returncode == 1 and "giving up" in run.stdout
    assert secret not in run.stdout + run.stderr
    config = json.loads(docker("image", "inspect", "workflow-streams-demo:0.1.0"))[0]["Config"]
    assert not [v for v in config["Env"] if "API_KEY" in v or "TLS" in v]
    assert config["User"] == "app"
    listing = compose("run", "--rm", "--no-deps", "--entrypoint", "ls", "worker", "-A", "/app")
    assert listing.stdout.split() == ["chaos", "services", "testkit"]
