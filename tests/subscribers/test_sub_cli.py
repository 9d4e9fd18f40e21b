"""``digest subscribers`` commands, run through typer's CliRunner on a temporary SQLite file."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

import digest.models
from digest.cli.subscribers import app
from digest.config import get_settings
from digest.db import create_engine
from digest.errors import InputError, NotFoundError
from subscribers import lifecycle
from subscribers.models import Status, Subscriber


@pytest.fixture
def database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("DIGEST_DATABASE_URL", url)
    monkeypatch.setenv("DIGEST_ENVIRONMENT", "test")
    monkeypatch.setenv("DIGEST_SECRET_KEY", "Pq8wEr4tYu7iOp2aSd6fGh1jKl9zXc3vBn5mQw0eRt")
    monkeypatch.setenv("DIGEST_BASE_URL", "https://verdicts.example.com")
    monkeypatch.setenv("DIGEST_EMAIL_BACKEND", "outbox")
    monkeypatch.setenv("DIGEST_OUTBOX_DIR", str(tmp_path / "outbox"))
    engine = create_engine(url)
    digest.models.create_schema(engine)
    engine.dispose()
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def _subscribers(url: str) -> dict[str, Subscriber]:
    engine = create_engine(url)
    with Session(engine) as session:
        rows = {s.email: s for s in session.exec(select(Subscriber)).all()}
    engine.dispose()
    return rows


def _outbox(tmp_path: Path) -> list[str]:
    directory = tmp_path / "outbox"
    return sorted(p.read_text() for p in directory.glob("*.eml")) if directory.is_dir() else []


def test_add_sends_a_confirmation(database: str, tmp_path: Path) -> None:
    result = run(
        "add",
        "Ada@Example.com",
        "--name",
        "Ada",
        "--timezone",
        "Europe/Berlin",
        "-c",
        "Developer Tools",
        "-c",
        "Image & Video",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == "Ada@example.com: pending, confirmation email sent\n"
    subscriber = _subscribers(database)["Ada@example.com"]
    assert subscriber.status == Status.PENDING
    assert subscriber.categories == ["Developer Tools", "Image & Video"]
    assert subscriber.confirmation_sent_at is not None
    [mail] = _outbox(tmp_path)
    assert "Confirm your subscription" in mail and "/confirm/" in mail

    again = run("add", "ada@example.com")
    assert again.exit_code == 0
    assert again.stdout == "Ada@example.com: already pending, nothing changed\n"
    assert len(_outbox(tmp_path)) == 1


def test_add_confirmed_is_active_without_mail(database: str, tmp_path: Path) -> None:
    result = run("add", "bob@example.com", "--confirmed", "--source", "conference")
    assert result.exit_code == 0, result.output
    assert result.stdout == "bob@example.com: active\n"
    subscriber = _subscribers(database)["bob@example.com"]
    assert (subscriber.status, subscriber.source) == (Status.ACTIVE, "conference")
    assert _outbox(tmp_path) == []


def test_add_refuses_bad_input(database: str) -> None:
    for args in (
        ["not-an-address"],
        ["a@example.com", "--timezone", "Nowhere/Land"],
        ["a@example.com", "--timezone", "America"],
        ["a@example.com", "--timezone", "Europe"],
        ["a@example.com", "--timezone", "y" * 10_000],
    ):
        result = run("add", *args)
        assert result.exit_code != 0
        assert isinstance(result.exception, InputError)
    assert _subscribers(database) == {}


def test_list_table_and_json(database: str) -> None:
    run("add", "ada@example.com", "--name", "Ada", "--confirmed", "-c", "Developer Tools")
    run("add", "bob@example.com")
    table = run("list")
    assert table.exit_code == 0
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["EMAIL", "STATUS", "NAME", "TIMEZONE", "CATEGORIES", "CREATED"]
    assert lines[1].startswith("ada@example.com") and "Developer Tools" in lines[1]
    assert "(all)" in lines[2]
    assert lines[-1] == "2 subscriber(s)"

    data = orjson.loads(run("list", "--json").stdout)
    assert [(d["email"], d["status"], d["categories"]) for d in data] == [
        ("ada@example.com", "active", ["Developer Tools"]),
        ("bob@example.com", "pending", []),
    ]
    assert {"name", "timezone", "created_at"} <= set(data[0])
    pending = orjson.loads(run("list", "--status", "PENDING", "--json").stdout)
    assert [d["email"] for d in pending] == ["bob@example.com"]
    bad = run("list", "--status", "sleeping")
    assert isinstance(bad.exception, InputError)


def test_import_sample_sends_confirmations(
    database: str, tmp_path: Path, fixtures_dir: Path
) -> None:
    result = run("import", str(fixtures_dir / "subscribers.csv"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "imported 40, existing 0, skipped 0, rejected 0",
        "confirmation emails sent: 40",
    ]
    assert len(_outbox(tmp_path)) == 40
    rows = _subscribers(database)
    assert all(s.confirmation_sent_at is not None for s in rows.values())


def test_import_with_bad_rows_exits_non_zero(database: str, tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "email,name,timezone,categories\n"
        "ada@example.com,Ada,UTC,\n"
        "nope,Bad,UTC,\n"
        "bob@example.com,Bob,Atlantis/Deep,\n",
        encoding="utf-8",
    )
    result = run("import", str(path), "--confirmed")
    assert result.exit_code == 1
    assert result.stdout == "imported 1, existing 0, skipped 0, rejected 2\n"
    assert f"{path}: line 3: invalid address" in result.stderr
    assert f"{path}: line 4: unknown timezone 'Atlantis/Deep'" in result.stderr
    assert list(_subscribers(database)) == ["ada@example.com"]
    assert _outbox(tmp_path) == []  # --confirmed sends nothing


def test_import_of_a_non_utf8_file_is_one_clear_error(database: str, tmp_path: Path) -> None:
    path = tmp_path / "legacy.csv"
    path.write_bytes("email,name\nzoe@example.com,Zoë\n".encode("cp1252"))
    result = run("import", str(path))
    assert result.exit_code != 0
    assert isinstance(result.exception, InputError)
    assert "legacy.csv: not UTF-8" in str(result.exception)


def test_export_to_file_and_stdout(database: str, tmp_path: Path) -> None:
    run("add", "ada@example.com", "--name", "=1+2", "--confirmed")
    target = tmp_path / "export.csv"
    result = run("export", str(target))
    assert result.exit_code == 0, result.output
    assert "exported 1 subscriber(s)" in result.stderr
    rows = list(csv.reader(target.open(encoding="utf-8", newline="")))
    assert rows == [
        ["email", "name", "timezone", "categories", "status"],
        ["ada@example.com", "'=1+2", "UTC", "", "active"],
    ]
    stdout = run("export", "-")
    assert list(csv.reader(io.StringIO(stdout.stdout))) == rows


def test_unsubscribe_remove_and_log(database: str) -> None:
    run("add", "ada@example.com", "--confirmed")
    result = run("unsubscribe", "ADA@example.com")
    assert result.exit_code == 0
    assert result.stdout == "ada@example.com: unsubscribed\n"
    assert run("unsubscribe", "ada@example.com").exit_code == 0  # idempotent

    removed = run("remove", "ada@example.com")
    assert removed.stdout == "ada@example.com: removed (still suppressed)\n"
    assert _subscribers(database) == {}

    log = run("log", "ada@example.com")
    assert log.exit_code == 0
    lines = log.stdout.splitlines()
    assert lines[0].split() == ["AT", "ACTION", "CAUSE", "ACTOR", "STATUS", "DETAIL"]
    assert [line.split()[2] for line in lines[1:]] == ["signup", "unsubscribe", "remove"]
    assert "active -> unsubscribed" in lines[2]
    entries = orjson.loads(run("log", "ada@example.com", "--json").stdout)
    assert [(e["action"], e["cause"], e["actor"]) for e in entries] == [
        ("signup", "admin", "cli"),
        ("unsubscribe", "admin", "cli"),
        ("remove", "admin", "cli"),
    ]

    # Adding the address back does not resubscribe it.
    again = run("add", "ada@example.com", "--confirmed")
    assert again.stdout == "ada@example.com: on the suppression list, not subscribed\n"
    assert _subscribers(database) == {}


def test_unknown_addresses_are_not_found(database: str) -> None:
    for command in ("unsubscribe", "remove"):
        result = run(command, "nobody@example.com")
        assert result.exit_code != 0
        assert isinstance(result.exception, NotFoundError)
        assert str(result.exception) == "no subscriber with address nobody@example.com"
    assert run("log", "nobody@example.com").stdout == "no audit entries for nobody@example.com\n"


def test_suppressions_and_unsuppress(database: str) -> None:
    engine = create_engine(database)
    with Session(engine) as session:
        lifecycle.record_complaint(session, "eve@example.com", actor="webhook:ses")
        session.commit()
    engine.dispose()
    listed = run("suppressions")
    assert "eve@example.com" in listed.stdout and "complained" in listed.stdout
    data = orjson.loads(run("suppressions", "--json").stdout)
    assert [(d["email_key"], d["reason"]) for d in data] == [("eve@example.com", "complained")]

    lifted = run("unsuppress", "Eve@example.com")
    assert lifted.exit_code == 0
    assert lifted.stdout == "Eve@example.com: no longer suppressed (was complained)\n"
    assert orjson.loads(run("suppressions", "--json").stdout) == []
    actions = [e["action"] for e in orjson.loads(run("log", "eve@example.com", "--json").stdout)]
    assert actions == ["complaint", "unsuppress"]
    assert isinstance(run("unsuppress", "eve@example.com").exception, NotFoundError)


def test_every_command_has_help() -> None:
    for command in (
        "add",
        "list",
        "import",
        "export",
        "unsubscribe",
        "remove",
        "log",
        "suppressions",
        "unsuppress",
    ):
        result = run(command, "--help")
        assert result.exit_code == 0, command
        assert "Usage" in result.stdout
