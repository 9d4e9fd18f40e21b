"""A database without the latest schema is answered in one line, and nothing is created.

Every command that uses the database checks it first (``digest.db.require_schema``): a missing
SQLite file, an empty database or PostgreSQL schema, or an older revision gives
``database … has no schema: run `digest db upgrade``` (or ``is at revision …``), exit 78,
instead of a driver's ``no such table`` half-way through. A database that cannot be reached
gives one line and exit 69.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer.main

from digest.cli import app
from digest.db import create_engine, head_revision, upgrade

RunCli = Callable[..., tuple[int, str, str]]  # the ``run_cli`` fixture (tests/core/conftest.py)

# Every command that reads or writes the database, read-only ones first.
COMMANDS = [
    ["status"],
    ["status", "--json"],
    ["preview", "--week", "2026-W47"],
    ["report", "--week", "2026-W47"],
    ["comparisons", "list", "--week", "2026-W47"],
    ["subscribers", "list"],
    ["subscribers", "export", "-"],
    ["subscribers", "log", "ada@example.com"],
    ["subscribers", "suppressions"],
    ["send", "--week", "2026-W47", "--dry-run"],
    ["comparisons", "import", "does-not-matter.json"],
    ["subscribers", "add", "ada@example.com", "--confirmed"],
    ["subscribers", "export-data", "ada@example.com"],
    ["votes", "export"],
    ["subscribers", "unsubscribe", "ada@example.com"],
    ["subscribers", "remove", "ada@example.com"],
    ["subscribers", "erase", "ada@example.com", "--yes"],
    ["subscribers", "import", "people.csv"],
    ["subscribers", "unsuppress", "ada@example.com"],
    ["send", "--week", "2026-W47"],
    ["resend", "--edition", "1", "--failed-only"],
    ["cancel", "--edition", "1"],
    ["worker", "--once"],
    ["scheduler", "--once"],
    ["pause"],
    ["resume"],
    ["serve"],
]


# Commands that do not open the database, or that create it.
WITHOUT_DATABASE = {
    ("config", "show"),
    ("config", "new-secret"),
    ("db", "upgrade"),
    ("db", "current"),
}


def _leaf_commands(
    group: typer.main.TyperGroup, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, ...]]:
    for name, command in group.commands.items():
        if isinstance(command, typer.main.TyperGroup):
            yield from _leaf_commands(command, (*path, name))
        else:
            yield (*path, name)


def test_every_command_is_checked_here() -> None:
    """A new command is added to COMMANDS (or to WITHOUT_DATABASE) so this file covers it."""
    root = typer.main.get_command(app)
    assert isinstance(root, typer.main.TyperGroup)
    covered = {tuple(args[:depth]) for args in COMMANDS for depth in (1, 2)}
    missing = [
        " ".join(leaf)
        for leaf in _leaf_commands(root)
        if leaf not in covered and leaf not in WITHOUT_DATABASE
    ]
    assert missing == []


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_missing_sqlite_file_is_one_line_and_creates_nothing(
    run_cli: RunCli, tmp_path: Path, args: list[str]
) -> None:
    folder = tmp_path / "data"
    code, out, err = run_cli(*args, url="sqlite:///data/digest.db")
    message = f"database {folder / 'digest.db'} has no schema: run `digest db upgrade`"
    assert code == 78, err
    if "--json" in args:  # `status --json` answers in JSON, errors included
        assert (json.loads(out), err) == ({"error": message}, "")
    else:
        assert (out, err) == ("", f"error: {message}\n")
    assert not folder.exists()


def test_upgrade_creates_the_file_and_its_directory_then_commands_work(
    run_cli: RunCli, tmp_path: Path
) -> None:
    code, out, _err = run_cli("db", "upgrade", url="sqlite:///data/digest.db")
    assert code == 0
    assert f"database {tmp_path / 'data' / 'digest.db'} at revision" in out
    code, out, _err = run_cli("subscribers", "list", url="sqlite:///data/digest.db")
    assert (code, out.strip()) == (
        0,
        "EMAIL  STATUS  NAME  TIMEZONE  CATEGORIES  CREATED\n0 subscriber(s)",
    )


def test_db_current_creates_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    code, out, _err = run_cli("db", "current", url="sqlite:///digest.db")
    assert code == 0 and out.startswith("revision none: behind")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "args", [["status"], ["subscribers", "list"], ["send", "--dry-run"]], ids=" ".join
)
def test_empty_database_has_no_schema(
    run_cli: RunCli, empty_db_url: str, tmp_path: Path, args: list[str]
) -> None:
    """An existing SQLite file without tables, or an empty PostgreSQL schema."""
    engine = create_engine(empty_db_url)
    with engine.begin() as connection:  # the SQLite file now exists, empty
        connection.execute(sa.text("SELECT 1"))
    code, out, err = run_cli(*args, url=empty_db_url)
    assert code == 78
    assert err.endswith("has no schema: run `digest db upgrade`\n")
    assert len(err.splitlines()) == 1 and out == ""
    if empty_db_url.startswith("sqlite"):
        assert str(tmp_path / "empty.db") in err
    else:
        assert "postgresql+psycopg://" in err
        assert sa.inspect(engine).get_table_names() == []  # nothing was created
    engine.dispose()


def test_an_older_revision_is_named(run_cli: RunCli, empty_db_url: str) -> None:
    upgrade(empty_db_url)
    engine = create_engine(empty_db_url)
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0000'"))
    engine.dispose()
    code, _out, err = run_cli("status", url=empty_db_url)
    assert code == 78
    assert err.startswith("error: database ")
    latest = head_revision(empty_db_url)
    assert err.endswith(
        f"is at revision 0000, not the latest ({latest}): run `digest db upgrade`\n"
    )


def test_an_unreachable_database_is_one_line(run_cli: RunCli) -> None:
    url = "postgresql+psycopg://digest:hunter2@127.0.0.1:1/nothing?connect_timeout=2"
    code, out, err = run_cli("subscribers", "list", url=url)
    assert code == 69
    assert err.startswith("error: database postgresql+psycopg://digest:***@127.0.0.1:1/nothing")
    assert "cannot be used: " in err and "hunter2" not in err
    assert len(err.splitlines()) == 1 and out == ""


def test_the_schema_check_knows_the_heads_alembic_knows() -> None:
    """``require_schema`` reads the heads from the migration files without alembic (faster
    start-up); they must be alembic's own."""
    from alembic.script import ScriptDirectory

    from digest.db import _head_revisions, alembic_config

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert _head_revisions() == tuple(sorted(script.get_heads()))


def test_a_revision_written_over_several_lines_is_read_from_the_whole_file() -> None:
    """Only the assignment lines are parsed, unless one runs over several lines (a merge)."""
    from digest.db import _revision_assignments

    source = '''"""Merge.\n\nrevision notes in the docstring"""\nimport sqlalchemy as sa\n
revision = "0010"
down_revision: tuple[str, ...] = (
    "0008",
    "0009",
)
'''
    values = [
        ast.literal_eval(node.value)
        for node in _revision_assignments(source)
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None
    ]
    assert values == ["0010", ("0008", "0009")]


def test_the_scheduler_probe_creates_nothing(tmp_path: Path) -> None:
    """The health probe of the scheduler's container checks the database the same way."""
    import os
    import subprocess
    import sys

    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path / 'digest.db'}",
    }
    probe = subprocess.run(
        [sys.executable, "-m", "digest.scheduler.probe"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert probe.returncode == 1
    assert probe.stderr == (
        f"scheduler probe: database {tmp_path / 'digest.db'} has no schema: "
        "run `digest db upgrade`\n"
    )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("garbage", "DIGEST_DATABASE_URL: must be sqlite:///path/to/digest.db or postgresql"),
        ("mysql://digest:hunter2@db/digest", "got 'mysql://digest:********@db/digest'"),
        ("sqlite+nosuchdriver:///x.db", "DIGEST_DATABASE_URL sqlite+nosuchdriver:///x.db: "),
    ],
    ids=["not a url", "another database", "unknown driver"],
)
def test_a_database_url_that_cannot_work_is_one_line(
    run_cli: RunCli, url: str, expected: str
) -> None:
    code, out, err = run_cli("status", url=url)
    assert code == 78 and out == ""
    [line] = err.splitlines()
    assert line.startswith("error: ") and expected in line and "hunter2" not in line
