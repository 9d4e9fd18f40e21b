"""Votes end to end: a real send to the outbox, then the reader's browser follows the Ship link
of the .eml and presses the button; and link scanners that fetch every link of a message with
GET and HEAD change nothing anywhere."""

from __future__ import annotations

import email
import email.policy
import html as html_lib
import json
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from playwright.sync_api import sync_playwright
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from typer.testing import CliRunner
from votes_support import SCANNER_AGENTS

from digest.cli import app as cli_app
from digest.config import Settings, get_settings
from digest.content.importer import import_paths
from digest.content.weeks import IsoWeek
from digest.db import session_scope
from digest.delivery.models import Delivery
from digest.delivery.run import run_edition
from digest.votes.models import Vote, VoteEvent
from digest.web.app import create_app
from subscribers import lifecycle
from subscribers.models import AuditEntry, Subscriber

CHROMIUM = shutil.which("chromium")
W47 = IsoWeek(2026, 47)
runner = CliRunner()


@pytest.fixture
def sent(
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    comparisons_dir: Path,
    live_server: Callable[[Callable[[str], Starlette]], str],
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[str, Settings, list[Path]]]:
    """W47 sent through the outbox to two subscribers, with the web app serving its links."""
    outbox = tmp_path / "outbox"
    served: dict[str, Settings] = {}

    def make_app(base_url: str) -> Starlette:
        served["settings"] = settings.model_copy(
            update={"base_url": base_url, "email_backend": "outbox", "outbox_dir": outbox}
        )
        return create_app(served["settings"], engine=engine)

    base_url = live_server(make_app)
    current = served["settings"]
    assert import_paths(engine, [str(comparisons_dir)]).ok
    with session_scope(engine) as session:
        for address in ("ada@example.com", "bob@example.com"):
            lifecycle.signup(session, address, source="test", actor="test", confirmed=True)
    report = run_edition(engine, current, W47, ignore_window=True, operator="test")
    files = sorted(outbox.glob("*.eml"))
    assert len(files) == 2, report
    monkeypatch.setenv("DIGEST_DATABASE_URL", current.database_url)
    monkeypatch.setenv("DIGEST_ENVIRONMENT", "test")
    monkeypatch.setenv("DIGEST_SECRET_KEY", current.secret_key.get_secret_value())
    get_settings.cache_clear()
    yield base_url, current, files
    get_settings.cache_clear()


def _parts(path: Path) -> tuple[str, str]:
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def _export() -> list[dict[str, Any]]:
    result = runner.invoke(cli_app, ["votes", "export", "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


@pytest.mark.browser
@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_a_reader_votes_from_the_email_and_changes_the_vote(
    sent: tuple[str, Settings, list[Path]],
) -> None:
    base_url, _settings, files = sent
    html, _text = _parts(files[0])
    first_ship = re.search(r'<a class="vy" href="([^"]+)">Ship</a>', html)
    assert first_ship is not None and first_ship.group(1).startswith(f"{base_url}/vote/")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 375, "height": 812})
            page.goto(first_ship.group(1))
            button = page.get_by_role("button", name=re.compile(r"^Record my vote: Ship "))
            assert button.is_visible()
            assert _export() == []  # opening the link recorded nothing
            button.click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", name=re.compile("Thanks: you'd ship")).is_visible()
            rows = _export()
            assert [(row["ship"], row["skip"]) for row in rows] == [(1, 0)]
            page.get_by_role("button", name="Change my vote to Skip").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", name=re.compile("Thanks: you'd skip")).is_visible()
            rows = _export()
            assert [(row["ship"], row["skip"]) for row in rows] == [(0, 1)]
        finally:
            browser.close()


def _state(engine: Engine) -> dict[str, Any]:
    """Everything a link could change: subscribers, audit, votes, ledger."""
    with engine.connect() as connection:
        subscribers = connection.execute(
            sa.select(
                Subscriber.id, Subscriber.status, Subscriber.paused, Subscriber.categories
            ).order_by(Subscriber.id)  # type: ignore[call-overload]  # type: ignore[arg-type]
        ).all()
        counts = {
            model.__name__: connection.execute(
                sa.select(sa.func.count()).select_from(model)
            ).scalar_one()
            for model in (AuditEntry, Vote, VoteEvent)
        }
        ledger = connection.execute(
            sa.select(Delivery.state, Delivery.provider_status).order_by(Delivery.id)  # type: ignore[call-overload]
        ).all()
    return {"subscribers": [tuple(row) for row in subscribers], "counts": counts, "ledger": ledger}


def test_scanners_fetching_every_link_change_nothing(
    sent: tuple[str, Settings, list[Path]], engine: Engine
) -> None:
    base_url, _settings, files = sent
    before = _state(engine)
    links: set[str] = set()
    for path in files:
        html, text = _parts(path)
        links |= set(re.findall(r'href="([^"]+)"', html))
        links |= set(re.findall(r"https?://\S+", text))
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        links |= set(re.findall(r"<(https?://[^>]+)>", str(message["List-Unsubscribe"])))
    ours = sorted(link.replace("&amp;", "&") for link in links if link.startswith(base_url))
    assert any("/vote/" in link for link in ours)
    assert any("/unsubscribe/" in link for link in ours)
    assert any("/preferences/" in link for link in ours)
    # Tracked links answer a 302 to sites outside the test: not followed.
    with httpx.Client(timeout=30, follow_redirects=False) as scanner:
        for agent in SCANNER_AGENTS:
            for link in ours:
                for method in ("GET", "HEAD"):
                    response = scanner.request(method, link, headers={"User-Agent": agent})
                    assert response.status_code < 500, (method, link, response.status_code)
    assert _state(engine) == before


def test_the_next_edition_and_the_archive_show_imported_plus_newsletter_votes(
    sent: tuple[str, Settings, list[Path]], engine: Engine
) -> None:
    base_url, settings, files = sent
    with httpx.Client(timeout=30) as reader:
        for path in files:  # Ada and Bob both ship Deskpilot (imported: 3 up, 14 down)
            html, _text = _parts(path)
            votes = re.findall(r'<a class="vy" href="([^"]+)">Ship</a>', html)
            ship = next(link for link in votes if _names_deskpilot(reader, link))
            assert reader.post(ship, data={"choice": "ship"}).status_code == 200
    # 3 + 2 ship of 17 + 2 votes: 26 % -> Mixed.
    figure = "Mixed — 26 % ship of 19 votes"
    archive = html_lib.unescape(httpx.get(f"{base_url}/editions/{W47}", timeout=30).text)
    assert f"Readers: {figure}" in archive
    report = run_edition(engine, settings, IsoWeek(2026, 48), ignore_window=True, operator="test")
    assert report.outcome.value in {"sent", "done"}, report
    outbox = files[0].parent
    newer = [path for path in sorted(outbox.glob("*.eml")) if path not in files]
    assert len(newer) == 2
    html, text = _parts(newer[0])
    assert "What readers said last time" in html and "What readers said last time" in text
    assert f"Deskpilot: {figure}" in html_lib.unescape(html)
    assert f"Deskpilot: {figure}" in " ".join(text.split())


def _names_deskpilot(client: httpx.Client, link: str) -> bool:
    return "Record my vote: Ship Deskpilot" in client.get(link).text
