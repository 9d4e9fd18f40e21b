"""A database without the latest schema is answered in one line, and nothing is created.

Every command that uses the database checks it first (``digest.db.require_schema``): a missing
SQLite file, an empty database or PostgreSQL schema, or an older revision gives
``database … has no schema: run `digest db upgrade``` (or ``is at revision …``), exit 78,
instead of a driver's ``no such table`` half-way through. A database that cannot be reached
gives one line and exit 69.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from digest.cli import main
from digest.config import get_settings
from digest.db import create_engine, head_revision, upgrade

SECRET = "q7Vx2LmP9sKd4RtY8wNb3HcJ6fGz1AeU5oWi0Tq"

# Every command that reads or writes the database, read-only ones first.
COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["preview", "--week", "2026-W47"],
    ["comparisons", "list", "--week", "2026-W47"],
    ["subscribers", "list"],
    ["subscribers", "export", "-"],
    ["subscribers", "log", "ada@example.com"],
    ["subscribers", "suppressions"],
    ["send", "--week", "2026-W47", "--dry-run"],
    ["comparisons", "import", "does-not-matter.json"],
    ["subscribers", "add", "ada@example.com", "--confirmed"],
    ["subscribers", "unsubscribe", "ada@example.com"],
    ["send", "--week", "2026-W47"],
    ["resend", "--edition", "1", "--failed-only"],
    ["cancel", "--edition", "1"],
    ["worker", "--once"],
    ["scheduler", "--once"],
    ["pause"],
    ["resume"],
    ["serve"],
]

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> Iterator[Run]:
    """Run ``digest ARGS`` in this process (``main``, as the console script does) with
    ``DIGEST_DATABASE_URL=url``; returns (exit code, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DIGEST_ENVIRONMENT", "test")
    monkeypatch.setenv("DIGEST_SECRET_KEY", SECRET)
    monkeypatch.setenv("DIGEST_EMAIL_BACKEND", "memory")

    def invoke(url: str, *args: str) -> tuple[int, str, str]:
        monkeypatch.setenv("DIGEST_DATABASE_URL", url)
        monkeypatch.setattr(sys, "argv", ["digest", *args])
        get_settings.cache_clear()
        capsys.readouterr()
        with pytest.raises(SystemExit) as exited:
            main()
        out, err = capsys.readouterr()
        code = exited.value.code
        return (code if isinstance(code, int) else 1), out, err

    yield invoke
    get_settings.cache_clear()


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_missing_sqlite_file_is_one_line_and_creates_nothing(
    run: Run, tmp_path: Path, args: list[str]
) -> None:
    folder = tmp_path / "data"
    code, out, err = run("sqlite:///data/digest.db", *args)
    assert code == 78, err
    assert err == (
        f"error: database {folder / 'digest.db'} has no schema: run `digest db upgrade`\n"
    )
    assert out == ""
    assert not folder.exists()


def test_upgrade_creates_the_file_and_its_directory_then_commands_work(
    run: Run, tmp_path: Path
) -> None:
    code, out, _err = run("sqlite:///data/digest.db", "db", "upgrade")
    assert code == 0
    assert f"database {tmp_path / 'data' / 'digest.db'} at revision" in out
    code, out, _err = run("sqlite:///data/digest.db", "subscribers", "list")
    assert (code, out.strip()) == (
        0,
        "EMAIL  STATUS  NAME  TIMEZONE  CATEGORIES  CREATED\n0 subscriber(s)",
    )


def test_db_current_creates_nothing(run: Run, tmp_path: Path) -> None:
    code, out, _err = run("sqlite:///digest.db", "db", "current")
    assert code == 0 and out.startswith("revision none: behind")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args", [["status"], ["subscribers", "list"], ["send", "--dry-run"]], ids=" ".join
)
def test_empty_database_has_no_schema(
    run: Run, empty_db_url: str, tmp_path: Path, args: list[str]
) -> None:
    """An existing SQLite file without tables, or an empty PostgreSQL schema."""
    engine = create_engine(empty_db_url)
    with engine.begin() as connection:  # the SQLite file now exists, empty
        connection.execute(sa.text("SELECT 1"))
    code, out, err = run(empty_db_url, *args)
    assert code == 78
    assert err.endswith("has no schema: run `digest db upgrade`\n")
    assert len(err.splitlines()) == 1 and out == ""
    if empty_db_url.startswith("sqlite"):
        assert str(tmp_path / "empty.db") in err
    else:
        assert "postgresql+psycopg://" in err
        assert sa.inspect(engine).get_table_names() == []  # nothing was created
    engine.dispose()


def test_an_older_revision_is_named(run: Run, empty_db_url: str) -> None:
    upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    code, _out, err = run(empty_db_url, "status")
    assert code == 78
    assert err.startswith("error: database ")
    latest = head_revision(empty_db_url)
    assert err.endswith(
        f"is at revision 0000, not the latest ({latest}): run `digest db upgrade`\n"
    )


def test_an_unreachable_database_is_one_line(run: Run) -> None:
    url = "postgresql+psycopg://digest:hunter2@127.0.0.1:1/nothing?connect_timeout=2"
    code, out, err = run(url, "subscribers", "list")
    assert code == 69
    assert err.startswith("error: database postgresql+psycopg://digest:***@127.0.0.1:1/nothing")
    assert "cannot be used: " in err and "hunter2" not in err
    assert len(err.splitlines()) == 1 and out == ""
