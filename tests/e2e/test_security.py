"""Security at the container edge: hardened, limited containers, and credentials kept out.

The key on no log line, where the key is really used, is in test_cluster.py.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.e2e.cli import compose, docker, run_docker
from tests.e2e.conftest import Stack

ROOT = Path(__file__).resolve().parents[2]
SERVICE_IMAGE, CHAOS_IMAGE = "workflow-streams-demo:0.1.0", "workflow-streams-chaos:0.1.0"
# What `docker compose build` reads: the Dockerfile, its context, the env files.
BUILD_INPUTS = (".dockerignore", "deploy", "requirements", "services", "chaos", "testkit")

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


def test_the_service_image_holds_no_chaos_tools_and_no_docker_sdk(stack: Stack) -> None:
    config = json.loads(docker("image", "inspect", SERVICE_IMAGE))[0]["Config"]
    assert not [v for v in config["Env"] if "API_KEY" in v or "TLS" in v]
    assert config["User"] == "app"
    assert _in_image(SERVICE_IMAGE, "ls -A /app").split() == ["services"]
    assert "ModuleNotFoundError" in _in_image(SERVICE_IMAGE, "python -c 'import docker'")


def test_the_chaos_image_adds_them(stack: Stack) -> None:
    compose("--profile", "chaos", "build", "chaos", timeout=900)
    assert _in_image(CHAOS_IMAGE, "ls -A /app").split() == ["chaos", "services", "testkit"]
    testkit = _in_image(CHAOS_IMAGE, "ls -A /app/testkit").split()
    assert testkit == ["__init__.py", "__pycache__", "waiting.py"]
    assert _in_image(CHAOS_IMAGE, "python -c 'import docker; print(docker.__name__)'") == "docker\n"


def test_every_container_is_hardened_and_limited(stack: Stack) -> None:
    ids = compose("ps", "--all", "--quiet").stdout.split()
    assert len(ids) >= 5
    for found in json.loads(docker("inspect", *ids)):
        name, host = found["Name"], found["HostConfig"]
        assert host["CapDrop"] == ["ALL"], name
        assert "no-new-privileges:true" in host["SecurityOpt"], name
        assert host["ReadonlyRootfs"] is True, name
        assert host["Memory"] > 0 and host["NanoCpus"] > 0 and host["PidsLimit"] > 0, name


def test_only_the_services_receive_temporal_env(tmp_path: Path) -> None:
    """The chaos container talks to the stack's own server, with no credential."""
    secret = "tk-" + uuid.uuid4().hex
    env_file = tmp_path / "temporal.env"
    env_file.write_text(f"TEMPORAL_ADDRESS=cluster.example:7233\nTEMPORAL_API_KEY={secret}\n")
    env = {**os.environ, "TEMPORAL_ENV_FILE": str(env_file), "LLM_API_KEY": "sk-" + secret}
    command = ["docker", "compose", "--profile", "chaos", "config", "--format", "json"]
    out = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    config = json.loads(out)["services"]
    assert config["worker"]["environment"]["TEMPORAL_API_KEY"] == secret
    assert config["worker"]["environment"]["TEMPORAL_ADDRESS"] == "cluster.example:7233"
    chaos = config["chaos"]["environment"]
    assert secret not in json.dumps(chaos)
    assert chaos["TEMPORAL_ADDRESS"] == "temporal:7233"


def test_credentials_beside_the_build_reach_no_image_layer(tmp_path: Path) -> None:
    """A temporal.env and certificates next to docker-compose.yml, as a user keeps them."""
    secret = "tk-" + uuid.uuid4().hex
    for part in (*BUILD_INPUTS, "docker-compose.yml"):
        source = ROOT / part
        copy = shutil.copytree if source.is_dir() else shutil.copy2
        copy(source, tmp_path / part)
    (tmp_path / "temporal.env").write_text(f"TEMPORAL_API_KEY={secret}\n")
    (tmp_path / "client.pem").write_text(f"{secret}\n")
    tag = f"wfs-secret-check:{secret[-8:]}"
    compose_file = tmp_path / "docker-compose.yml"
    compose_file.write_text(compose_file.read_text().replace(SERVICE_IMAGE, tag))
    project = ["compose", "--project-directory", str(tmp_path), "-p", f"wfs-sec-{secret[-6:]}"]
    try:
        run_docker(*project, "build", "worker", timeout=900)
        history = docker("history", "--no-trunc", tag) + docker("image", "inspect", tag)
        assert secret not in history
        found = _in_image(tag, f"grep -rl {secret} / --exclude-dir=proc --exclude-dir=sys || true")
        assert found == ""
    finally:
        run_docker("image", "rm", tag, check=False)


def _in_image(image: str, command: str) -> str:
    """What ``command`` prints (stdout and stderr) in a throwaway container of ``image``."""
    run = run_docker(
        "run", "--rm", "--entrypoint", "sh", image, "-c", f"{command} 2>&1", check=False
    )
    return run.stdout
