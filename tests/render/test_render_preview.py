"""``digest preview``: what a subscriber would receive, in every format, changing nothing."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import typer
from render_support import TEST_SECRET
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from starlette.testclient import TestClient
from typer.testing import CliRunner

from digest.cli import preview as preview_cli
from digest.config import Settings, get_settings
from digest.content.importer import import_paths
from digest.content.weeks import IsoWeek
from digest.editions.preview import read_only_session
from digest.errors import NotFoundError
from digest.render import templates
from subscribers.models import Status, Subscriber
from subscribers.tokens import Purpose, TokenSigner

runner = CliRunner()
app = typer.Typer()
app.command("preview")(preview_cli.preview)


@app.callback()
def _group() -> None:
    """Keeps ``preview`` a sub-command, as in the real ``digest`` app."""


@pytest.fixture
def preview_env(
    settings: Settings, engine: Engine, comparisons_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Engine]:
    assert import_paths(engine, [str(comparisons_dir)]).ok
    with Session(engine) as session:
        session.add(
            Subscriber(
                email="Zoe@example.com",
                email_key="zoe@example.com",
                name="Zoë Fontaine",
                categories=["Developer Tools"],
                status=Status.ACTIVE,
            )
        )
        session.add(
            Subscriber(
                email="gone@example.com",
                email_key="gone@example.com",
                categories=["Image & Video"],
                status=Status.UNSUBSCRIBED,
            )
        )
        session.commit()
    monkeypatch.setenv("DIGEST_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DIGEST_ENVIRONMENT", "test")
    monkeypatch.setenv("DIGEST_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("DIGEST_BASE_URL", "https://verdicts.example.com")
    monkeypatch.setenv("DIGEST_TIMEZONE", "UTC")
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as connection:
        return {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("comparison", "subscriber", "edition", "audit_log")
        }


def test_html_for_the_sample_reader(preview_env: Engine) -> None:
    before = _counts(preview_env)
    result = runner.invoke(app, ["preview", "--week", "2026-W47"])
    assert result.exit_code == 0, result.output
    assert result.stdout.lower().startswith("<!doctype html>")
    for title in ("Deskpilot vs Ticketsmith", "Chartwise vs Querylark"):
        assert title in result.stdout
    assert "Hi there," in result.stdout
    # https base URL, small HTML: no warning, only the size line.
    assert result.stderr.startswith("note: size: HTML ") and "warning" not in result.stderr
    assert _counts(preview_env) == before


def test_as_a_subscriber_uses_their_categories_and_signed_links(preview_env: Engine) -> None:
    with Session(preview_env) as session:
        zoe = session.exec(
            select(Subscriber).where(Subscriber.email_key == "zoe@example.com")
        ).one()
    result = runner.invoke(
        app, ["preview", "--week", "2026-W47", "--as", "ZOE@EXAMPLE.COM", "--format", "text"]
    )
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert "Hi Zoë," in text
    assert "Stackhound vs Patchwell" in text and "Deskpilot vs Ticketsmith" not in text
    token = re.search(r"/unsubscribe/(\S+)", text)
    assert token and TokenSigner(TEST_SECRET).read(token[1], Purpose.UNSUBSCRIBE) == zoe.id


def test_eml_is_the_full_message(preview_env: Engine) -> None:
    result = runner.invoke(
        app, ["preview", "--week", "2026-W47", "--as", "zoe@example.com", "--format", "eml"]
    )
    assert result.exit_code == 0, result.output
    raw = result.stdout_bytes
    assert b"\r\n" in raw
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed["Subject"] == (
        "Claude Haiku Open Weights vs Hugging Face Inference…, and 1 more verdict"
    )
    assert parsed["To"] == "Zoë Fontaine <Zoe@example.com>"
    assert str(parsed["List-Unsubscribe"]).startswith("<https://verdicts.example.com/unsubscribe/")
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Id"] == '"Weekly AI Tool Verdicts" <weekly.verdicts.example.com>'
    assert parsed["Message-ID"].endswith("@verdicts.example.com>")
    assert [part.get_content_type() for part in parsed.iter_parts()] == ["text/plain", "text/html"]


def test_out_writes_a_file_and_open_opens_it(
    preview_env: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    monkeypatch.setattr(preview_cli.webbrowser, "open", lambda url: opened.append(url) or True)
    target = tmp_path / "w47.html"
    result = runner.invoke(app, ["preview", "--week", "2026-W47", "--out", str(target), "--open"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target)
    assert target.read_text(encoding="utf-8").lower().startswith("<!doctype html>")
    assert opened == [target.resolve().as_uri()]
    assert "no web browser" not in result.stderr


def test_open_without_a_browser_says_so(
    preview_env: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(preview_cli.webbrowser, "open", lambda url: False)  # none could run
    target = tmp_path / "w47.html"
    result = runner.invoke(app, ["preview", "--week", "2026-W47", "--out", str(target), "--open"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == str(target) and target.is_file()
    assert result.stderr.strip().splitlines()[-1] == (
        f"warning: --open found no web browser to run (set BROWSER to choose one); "
        f"the preview is at {target.resolve()}"
    )


def test_lint_warnings_go_to_stderr(preview_env: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGEST_BASE_URL", "http://localhost:8000")
    monkeypatch.setenv("DIGEST_SUBJECT_TEMPLATE", "{titles}")
    get_settings.cache_clear()
    result = runner.invoke(app, ["preview", "--week", "2026-W47"])
    assert result.exit_code == 0, result.output
    # The send shortens the subject to 78 characters, so the lint (same limit) agrees.
    assert "warning: subject-length" not in result.stderr
    assert "link(s) not absolute https (http://localhost:8000): http://localhost:8000/" in (
        result.stderr
    )
    assert result.stderr.count("warning: link:") == 1
    assert "warning: list-unsubscribe" in result.stderr
    assert "warning" not in result.stdout
    assert "note: size: HTML " in result.stderr and "KB of a 90 KB budget" in result.stderr


def test_subscriber_without_matching_comparisons_gets_nothing(preview_env: Engine) -> None:
    result = runner.invoke(app, ["preview", "--week", "2026-W47", "--as", "gone@example.com"])
    assert result.exit_code == 0
    assert result.stdout == ""
    assert "is unsubscribed" in result.stderr
    assert "they get no email this week" in result.stderr


def test_unknown_subscriber_and_empty_week_are_errors(preview_env: Engine) -> None:
    result = runner.invoke(app, ["preview", "--week", "2026-W47", "--as", "nobody@example.com"])
    assert isinstance(result.exception, NotFoundError)
    result = runner.invoke(app, ["preview", "--week", "2026-W10"])
    assert isinstance(result.exception, NotFoundError)
    assert "no comparisons published in 2026-W10" in str(result.exception)


def test_read_only_session_refuses_writes(preview_env: Engine) -> None:
    with pytest.raises(sa.exc.DBAPIError), read_only_session(preview_env) as session:
        session.add(Subscriber(email="new@example.com", email_key="new@example.com"))
        session.flush()
    with Session(preview_env) as session:  # the connection is writable again afterwards
        session.add(Subscriber(email="new@example.com", email_key="new@example.com"))
        session.commit()


def test_serve_renders_fresh_templates_and_reports_changes(
    preview_env: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    copy = tmp_path / "templates"
    shutil.copytree(templates.templates_root(), copy)
    monkeypatch.setenv(templates.TEMPLATES_ENV_VAR, str(copy))
    client = TestClient(preview_cli.create_preview_app(get_settings(), IsoWeek(2026, 47)))
    page = client.get("/")
    assert page.status_code == 200
    assert "Deskpilot vs Ticketsmith" in page.text
    assert "/__templates_mtime" in page.text  # the reload script
    before = client.get("/__templates_mtime").json()["mtime"]

    footer = copy / "email" / "partials" / "footer.mjml.j2"
    footer.write_text(
        footer.read_text(encoding="utf-8").replace("Manage preferences", "Your settings"),
        encoding="utf-8",
    )
    import os

    os.utime(footer, (before + 5, before + 5))
    assert client.get("/__templates_mtime").json()["mtime"] > before
    again = client.get("/")
    assert "Your settings" in again.text and "Manage preferences" not in again.text

    text = client.get("/", params={"format": "text", "as": "zoe@example.com"})
    assert text.headers["content-type"].startswith("text/plain")
    assert "Hi Zoë," in text.text
    assert client.get("/", params={"as": "gone@example.com"}).status_code == 404


def _edit_title(engine: Engine, slug: str, title: str) -> None:
    from digest.content.store import get_comparison, upsert_comparison

    with Session(engine) as session:
        doc = get_comparison(session, slug)
        assert doc is not None
        upsert_comparison(session, doc.model_copy(update={"title": title}), "edited")
        session.commit()


def test_before_the_edition_exists_the_current_selection_is_shown(preview_env: Engine) -> None:
    _edit_title(preview_env, "deskpilot-vs-ticketsmith", "Deskpilot vs Ticketsmith, revised")
    result = runner.invoke(app, ["preview", "--week", "2026-W47"])
    assert result.exit_code == 0, result.output
    assert "Deskpilot vs Ticketsmith, revised" in result.stdout
    assert "edition" not in result.stderr


def test_once_the_edition_exists_its_frozen_snapshots_are_shown(preview_env: Engine) -> None:
    from digest.editions.service import open_edition
    from digest.render.edition import subject_for

    settings = get_settings()
    week = IsoWeek(2026, 47)
    outcome = open_edition(preview_env, settings, week, subject_for=subject_for(settings, week))
    assert outcome.edition is not None
    _edit_title(preview_env, "deskpilot-vs-ticketsmith", "Deskpilot vs Ticketsmith, revised")
    before = _counts(preview_env)

    result = runner.invoke(app, ["preview", "--week", "2026-W47"])
    assert result.exit_code == 0, result.output
    assert "Deskpilot vs Ticketsmith" in result.stdout
    assert "revised" not in result.stdout  # what the send uses, not the edited content
    notes = [line for line in result.stderr.splitlines() if "edition" in line]
    assert notes == [
        f"note: rendered from edition {outcome.edition.id} of 2026-W47 (sending): "
        "its 6 frozen comparison snapshot(s), as a send uses them"
    ]
    assert f"/editions/{outcome.edition.id}" in result.stdout  # its archive link
    assert _counts(preview_env) == before


def test_serve_shows_errors_in_the_page_and_keeps_reloading(
    preview_env: Engine,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A bad ?week=, ?as= or ?format=, or a template that does not compile: the page says
    so and keeps its reload script; the terminal gets one line, once per template change."""
    import os
    import shutil

    copy = tmp_path / "templates"
    shutil.copytree(templates.templates_root(), copy)
    monkeypatch.setenv(templates.TEMPLATES_ENV_VAR, str(copy))
    client = TestClient(preview_cli.create_preview_app(get_settings(), IsoWeek(2026, 47)))

    def page(**params: str) -> tuple[int, str]:
        answer = client.get("/", params=params)
        assert "/__templates_mtime" in answer.text  # the reload script is kept
        return answer.status_code, answer.text

    assert page()[0] == 200
    assert page()[0] == 200
    for params, status, problem in [
        ({"week": "2026-W99"}, 400, "invalid week &#x27;2026-W99&#x27;"),
        ({"as": "nobody@example.com"}, 404, "no subscriber with address"),
        ({"format": "pdf"}, 400, "unknown format &#x27;pdf&#x27;"),
    ]:
        assert page(**params)[:1] == (status,)
        assert problem in page(**params)[1]  # asked twice

    footer = copy / "email" / "partials" / "footer.mjml.j2"
    good = footer.read_text(encoding="utf-8")
    before = client.get("/__templates_mtime").json()["mtime"]
    footer.write_text(good + "\n{% if %}\n", encoding="utf-8")
    os.utime(footer, (before + 5, before + 5))
    status, text = page()
    assert status == 500 and "footer.mjml.j2:" in text and "<script>" in text
    page()
    footer.write_text(good, encoding="utf-8")
    os.utime(footer, (before + 10, before + 10))
    assert page()[0] == 200

    lines = capsys.readouterr().err.splitlines()
    assert "Traceback" not in "\n".join(lines)
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 4, errors  # each problem once, though each page was asked twice
    assert any("footer.mjml.j2:" in line for line in errors)
    notes = [line for line in lines if line.startswith("note: size")]
    assert len(notes) == 2, lines  # the first page, and the first after the fixed template


def test_as_a_subscriber_says_when_they_receive_it_in_local_time_delivery(
    preview_env: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    import time_machine

    args = ["preview", "--week", "2026-W47", "--as", "zoe@example.com", "--format", "text"]
    with time_machine.travel(dt.datetime(2026, 11, 20, tzinfo=dt.UTC), tick=False):
        at_once = runner.invoke(app, args)
        assert at_once.exit_code == 0 and "this edition at" not in at_once.stderr
        monkeypatch.setenv("DIGEST_DELIVERY_MODE", "local-time")
        monkeypatch.setenv("DIGEST_TIMEZONE", "America/St_Johns")  # Zoë gave no zone
        get_settings.cache_clear()
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (
        "note: Zoe@example.com is due this edition at Mon 23 Nov 2026 08:00 America/St_Johns"
        " (2026-11-23T11:30:00Z)" in result.stderr
    )
