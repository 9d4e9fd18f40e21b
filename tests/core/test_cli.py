"""The ``digest`` command line: help, version, one-line errors, comparisons import and list."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from digest.cli import app
from digest.config import Settings, get_settings

runner = CliRunner()
CLI_SECRET = "Pq8wEr4tYu7iOp2aSd6fGh1jKl9zXc3vBn5mQw0eRt"
SEED_SLUG = "claude-haiku-open-weights-vs-hugging-face-inference-providers-hub"


@pytest.fixture
def cli_env(empty_db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """The environment of a command line on a database that `digest db upgrade` creates."""
    monkeypatch.setenv("DIGEST_DATABASE_URL", empty_db_url)
    monkeypatch.setenv("DIGEST_ENVIRONMENT", "test")
    monkeypatch.setenv("DIGEST_SECRET_KEY", CLI_SECRET)
    monkeypatch.setenv("DIGEST_TIMEZONE", "UTC")
    get_settings.cache_clear()
    upgraded = runner.invoke(app, ["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    yield get_settings()
    get_settings.cache_clear()


def test_help_for_every_command() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "comparisons" in result.output
    for command in (
        ["comparisons", "import"],
        ["comparisons", "list"],
        ["db", "upgrade"],
        ["config", "show"],
    ):
        assert runner.invoke(app, [*command, "--help"]).exit_code == 0, command


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.startswith("digest ")


def test_import_twice_then_list_week_json(cli_env: Settings, comparisons_dir: Path) -> None:
    total = len(list(comparisons_dir.glob("*.json")))
    first = runner.invoke(app, ["comparisons", "import", str(comparisons_dir)])
    assert first.exit_code == 0, first.output
    assert f"imported {total}, updated 0, unchanged 0, rejected 0" in first.output
    second = runner.invoke(app, ["comparisons", "import", str(comparisons_dir)])
    assert f"imported 0, updated 0, unchanged {total}, rejected 0" in second.output

    listed = runner.invoke(app, ["comparisons", "list", "--week", "2026-W47", "--json"])
    assert listed.exit_code == 0
    rows = json.loads(listed.stdout)
    assert len(rows) == 6
    seed = next(row for row in rows if row["slug"] == SEED_SLUG)
    assert seed["published_at"] == "2026-11-17T14:00:00Z"
    tools = {tool["name"]: tool for tool in seed["tools"]}
    haiku = tools["Claude Haiku Open Weights"]
    hub = tools["Hugging Face Inference Providers Hub"]
    assert (haiku["verdict"], haiku["ship_percent"], haiku["ship"], haiku["skip"]) == (
        "Mixed",
        50,
        2,
        2,
    )
    assert (hub["verdict"], hub["ship_percent"], hub["ship"], hub["skip"]) == ("Ship", 100, 4, 0)
    assert haiku["average_score"] == 59.75 and {"slug", "name"} <= set(haiku)
    assert (seed["pick"], seed["outcome"]) == ("hugging-face-inference-providers-hub", "pick")
    # Deskpilot ranks first but every tool is a Skip: no pick.
    desk = next(row for row in rows if row["slug"] == "deskpilot-vs-ticketsmith")
    assert (desk["recommended"], desk["pick"], desk["outcome"]) == ("deskpilot", None, "all-skip")
    text = runner.invoke(app, ["comparisons", "list", "--week", "2026-W47"]).stdout
    assert "  The panel would skip both\n" in text
    assert "  The panel's pick: Hugging Face Inference Providers Hub\n" in text


def test_list_in_new_york_includes_the_sunday_evening_comparison(
    cli_env: Settings, comparisons_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner.invoke(app, ["comparisons", "import", str(comparisons_dir)])
    monkeypatch.setenv("DIGEST_TIMEZONE", "America/New_York")
    get_settings.cache_clear()
    rows = json.loads(
        runner.invoke(app, ["comparisons", "list", "--week", "2026-W47", "--json"]).stdout
    )
    assert len(rows) == 7


def test_import_with_a_bad_file_exits_non_zero(cli_env: Settings, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text('{"slug": "x"}', encoding="utf-8")
    result = runner.invoke(app, ["comparisons", "import", str(tmp_path / "bad.json")])
    assert result.exit_code == 1
    assert "bad.json: title: is required" in result.stderr
    assert "imported 0, updated 0, unchanged 0, rejected 1" in result.stdout


def test_config_show_masks_secrets(cli_env: Settings) -> None:
    result = runner.invoke(app, ["config", "show", "--json"])
    shown = json.loads(result.stdout)
    assert shown["secret_key"] == "********"
    assert cli_env.secret_key.get_secret_value() not in result.stdout


def test_errors_are_one_line_without_traceback(tmp_path: Path) -> None:
    env = {"DIGEST_DATABASE_URL": f"sqlite:///{tmp_path}/x.db", "PATH": "/usr/bin:/bin"}
    process = subprocess.run(
        [sys.executable, "-m", "digest", "comparisons", "list", "--week", "2026-W99"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert process.returncode != 0
    assert process.stderr.strip() == "error: invalid week '2026-W99': 2026 has weeks 01 to 53"
    assert "Traceback" not in process.stderr


def test_bad_settings_are_one_line(tmp_path: Path) -> None:
    env = {"DIGEST_TIMEZONE": "Nowhere/Land", "PATH": "/usr/bin:/bin"}
    process = subprocess.run(
        [sys.executable, "-m", "digest", "config", "show"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        cwd=tmp_path,
    )
    assert process.returncode == 78
    assert process.stderr.startswith("error: invalid settings: DIGEST_TIMEZONE: unknown timezone")
    assert len(process.stderr.strip().splitlines()) == 1
