"""``digest scheduler``, ``digest pause`` and ``digest resume`` on the command line."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import time_machine
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from digest.cli.scheduler import app
from digest.config import Settings, get_settings
from digest.delivery.guards import is_paused, pause_state
from digest.errors import ConfigError
from digest.scheduler.heartbeat import scheduler_status

runner = CliRunner()


@pytest.fixture
def cli_env(
    job_settings: Settings, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    monkeypatch.setenv("DIGEST_DATABASE_URL", job_settings.database_url)
    monkeypatch.setenv("DIGEST_ENVIRONMENT", "test")
    monkeypatch.setenv("DIGEST_SECRET_KEY", job_settings.secret_key.get_secret_value())
    monkeypatch.setenv("DIGEST_OUTBOX_DIR", str(job_settings.outbox_dir))
    monkeypatch.setenv("DIGEST_CONTENT_DIR", str(job_settings.content_dir))
    monkeypatch.setenv("DIGEST_SEND_CONCURRENCY", "1")
    monkeypatch.setenv("DIGEST_SEND_RATE", "100000")
    monkeypatch.delenv("DIGEST_SEND_WINDOW", raising=False)
    get_settings.cache_clear()
    yield job_settings
    get_settings.cache_clear()


def test_help_for_every_command() -> None:
    for command in ("scheduler", "pause", "resume"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, result.output
    assert "--once" in runner.invoke(app, ["scheduler", "--help"]).output


def test_pause_then_resume(cli_env: Settings, engine: Engine) -> None:
    paused = runner.invoke(app, ["pause", "--reason", "wrong subject", "--by", "ops"])
    assert paused.exit_code == 0, paused.output
    assert "paused by ops" in paused.output and "wrong subject" in paused.output
    assert is_paused(engine)
    assert scheduler_status(engine)["pause"]["reason"] == "wrong subject"

    resumed = runner.invoke(app, ["resume"])
    assert resumed.exit_code == 0 and "resumed by " in resumed.output
    state = pause_state(engine)
    assert state is not None and state["paused"] is False and "@" in state["by"]


def test_once_runs_the_weekly_job_and_reports_it(
    cli_env: Settings, add_subscribers: object, tmp_path: Path
) -> None:
    add_subscribers(3)  # type: ignore[operator]
    with time_machine.travel(dt.datetime(2026, 11, 24, 10, tzinfo=dt.UTC), tick=False):
        first = runner.invoke(app, ["scheduler", "--once"])
        second = runner.invoke(app, ["scheduler", "--once", "--json"])
    assert first.exit_code == 0, first.output
    assert first.stdout.startswith("week 2026-W47: sent; edition 1; sent 3")
    assert second.exit_code == 0
    report = json.loads(second.stdout)
    assert report["status"] == "already_sent" and report["trigger"] == "once"


def test_once_that_fails_exits_non_zero(
    cli_env: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DIGEST_CONTENT_DIR", str(tmp_path / "nowhere"))
    get_settings.cache_clear()
    result = runner.invoke(app, ["scheduler", "--once"])
    assert result.exit_code == 1
    assert "failed" in result.output and "no such file or directory" in result.output


def test_invalid_schedule_is_refused(cli_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_SCHEDULE", "mondays at eight")
    get_settings.cache_clear()
    result = runner.invoke(app, ["scheduler", "--once"])
    assert isinstance(result.exception, ConfigError)
    assert result.exception.exit_code == 78 and "DIGEST_SCHEDULE" in str(result.exception)
