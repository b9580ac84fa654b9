"""Configuration: defaults hold, and every bad value names its variable."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from services.shared.settings import ConfigError, Settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_need_no_environment() -> None:
    settings = Settings.from_env({})
    assert settings == Settings()
    # A pipeline run must outlast a person typing `make chaos-subscriber`.
    events = 5 * settings.pipeline_steps_per_stage
    assert events * settings.pipeline_step_seconds >= 120


def test_values_are_read_and_trimmed() -> None:
    settings = Settings.from_env(
        {"LOG_FORMAT": " JSON ", "PIPELINE_STEP_SECONDS": "0.5", "TICKER_KEEP": "4"}
    )
    assert (settings.log_format, settings.pipeline_step_seconds, settings.ticker_keep) == (
        "json",
        0.5,
        4,
    )


@pytest.mark.parametrize(
    ("name", "value", "accepted"),
    [
        ("LOG_FORMAT", "xml", "console, json"),
        ("LOG_LEVEL", "loud", "debug, info, warning, error"),
        ("PIPELINE_STEP_SECONDS", "fast", "a number of seconds"),
        ("PIPELINE_STEP_SECONDS", "-1", "a number of seconds"),
        ("PIPELINE_STEP_SECONDS", "nan", "a number of seconds"),
        ("POLL_COOLDOWN_SECONDS", "0", "above 0 (for example 0.05): at 0 a reader"),
        ("TICKER_TICKS", "-3", "a whole number at least 1"),
        ("PIPELINE_STEPS_PER_STAGE", "2.5", "a whole number at least 1"),
        ("CONNECT_ATTEMPTS", "0", "a whole number at least 1"),
        ("PUBLISHER_BATCH_SIZE", "5000", "at most 2000"),
        ("TEMPORAL_ADDRESS", "http://temporal:7233", "host:port"),
        ("TEMPORAL_ADDRESS", "temporal", "host:port"),
        ("TEMPORAL_ADDRESS", "temporal:99999", "port 1-65535"),
        ("LLM_BASE_URL", "localhost:11434", "is not an http(s) URL"),
        ("LLM_HEARTBEAT_TIMEOUT_SECONDS", "0.5", "1.0 or more"),
        ("LLM_TURNS_PER_RUN", "0", "a whole number at least 1"),
    ],
)
def test_bad_values_are_refused_by_name(name: str, value: str, accepted: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}={value!r}")
    assert accepted in message


def test_a_viewer_buffer_larger_than_the_replay_window_is_refused_naming_both() -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"WEB_VIEWER_BUFFER": "600", "WEB_REPLAY_EVENTS": "100"})
    assert str(caught.value).startswith(
        "WEB_VIEWER_BUFFER=600 is larger than WEB_REPLAY_EVENTS=100"
    )
    assert "use at most 100" in str(caught.value)
    with pytest.raises(ConfigError, match="WEB_VIEWER_BUFFER=500 is larger"):  # the default
        Settings.from_env({"WEB_REPLAY_EVENTS": "100"})
    fits = Settings.from_env({"WEB_VIEWER_BUFFER": "100", "WEB_REPLAY_EVENTS": "100"})
    assert (fits.web_viewer_buffer, fits.web_replay_events) == (100, 100)


class _Recording(dict[str, str]):
    """An empty environment that remembers which variables were asked for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.asked.add(key)
        return default


def test_every_field_is_read_from_its_own_variable() -> None:
    env = _Recording()
    Settings.from_env(env)
    assert env.asked == {*Settings.variables(), "TEMPORAL_ADDRESS"}


# Set per service in docker-compose.yml rather than passed through from the shell.
_SET_BY_COMPOSE = {"ON_REFUSAL", "HEALTH_FILE"}


def test_every_setting_reaches_the_containers_and_the_configuration_page() -> None:
    compose = (ROOT / "docker-compose.yml").read_text()
    block = compose.split("environment: &python-env", 1)[1].split("env_file:", 1)[0]
    passed_through = set(re.findall(r"^ {4}([A-Z][A-Z0-9_]*):", block, re.MULTILINE))
    assert set(Settings.variables()) - _SET_BY_COMPOSE <= passed_through

    # The table's first column only: a variable named in another row's prose
    # does not count as documented.
    page = (ROOT / "docs" / "configuration.md").read_text()
    table = page.split("| variable | default |", 1)[1].split("\n\n", 1)[0]
    first_cells = [row.split("|")[1] for row in table.splitlines() if row.startswith("| `")]
    documented = {name for cell in first_cells for name in re.findall(r"`([A-Z][A-Z0-9_]*)`", cell)}
    assert set(Settings.variables()) <= documented
