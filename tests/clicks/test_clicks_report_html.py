"""The HTML report: self-contained (no script, no remote resource), a titled chart with a text
alternative per comparison plus the trend and the hour-of-day curve; served at
/reports/{edition} only with the admin token; in a browser it renders with 0 serious axe
violations."""

from __future__ import annotations

import datetime as dt
import re
import shutil
from pathlib import Path

import pytest
from clicks_support import Tracked
from pydantic import SecretStr
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient
from test_clicks_report import scripted  # noqa: F401  (the fixture)
from typer.testing import CliRunner

from digest.backends.memory import MemoryBackend
from digest.cli import app as cli_app
from digest.clicks import opens
from digest.clicks.opens import RawOpen
from digest.config import Settings
from digest.db import immediate_transaction
from digest.delivery.report import edition_report
from digest.delivery.report_html import report_html
from digest.web.app import create_app

ADMIN = "report-admin-token-0123456789"


def _html(engine: Engine, settings: Settings, tracked: Tracked) -> str:
    return report_html(edition_report(engine, settings, tracked.edition_id), "Verdicts")


@pytest.mark.usefixtures("scripted")
def test_the_page_is_self_contained_and_every_chart_has_a_text_alternative(
    engine: Engine, click_settings: Settings, tracked: Tracked
) -> None:
    html = _html(engine, click_settings, tracked)
    assert "<script" not in html.lower()
    remote = set(re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", html))
    assert remote == set()
    assert "@import" not in html and "url(" not in html
    figures = re.findall(r"<figure.*?</figure>", html, re.DOTALL)
    assert len(figures) == 6 + 2  # one per comparison, the trend, the hours
    for figure in figures:
        caption = re.search(r'<figcaption id="([^"]+)">([^<]+)</figcaption>', figure)
        assert caption, figure[:200]
        svg = re.search(r"<svg [^>]*>", figure)
        assert svg and 'role="img"' in svg[0] and f'aria-labelledby="{caption[1]}"' in svg[0]
        described = re.search(r'aria-describedby="([^"]+)"', svg[0])
        assert described and f'<table id="{described[1]}">' in figure
    assert "Human clicks by hour of day (UTC)" in html


@pytest.mark.usefixtures("scripted")
def test_report_html_option_writes_the_file(
    click_settings: Settings,
    tracked: Tracked,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", click_settings.database_url)
    monkeypatch.setenv("DIGEST_SECRET_KEY", click_settings.secret_key.get_secret_value())
    target = tmp_path / "report.html"
    result = CliRunner().invoke(
        cli_app, ["report", "--edition", str(tracked.edition_id), "--html", str(target)]
    )
    assert result.exit_code == 0, result.output
    assert "<svg" in target.read_text(encoding="utf-8")
    bad = CliRunner().invoke(
        cli_app, ["report", "--edition", str(tracked.edition_id), "--html", str(tmp_path)]
    )
    assert bad.exit_code != 0 and "--html: cannot write" in str(bad.exception)


@pytest.mark.usefixtures("scripted")
def test_the_report_route_needs_the_admin_token(
    click_settings: Settings, engine: Engine, tracked: Tracked
) -> None:
    url = f"/reports/{tracked.edition_id}"
    closed = create_app(click_settings, backend=MemoryBackend(), engine=engine)
    with TestClient(closed) as client:
        assert client.get(url, headers={"Authorization": f"Bearer {ADMIN}"}).status_code == 404
    settings = click_settings.model_copy(update={"admin_token": SecretStr(ADMIN)})
    app = create_app(settings, backend=MemoryBackend(), engine=engine)
    with TestClient(app) as client:
        assert client.get(url).status_code == 401
        assert client.get(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
        page = client.get(url, headers={"Authorization": f"Bearer {ADMIN}"})
        assert page.status_code == 200 and "<svg" in page.text
        assert page.headers["cache-control"] == "no-store"
        missing = client.get("/reports/99999", headers={"Authorization": f"Bearer {ADMIN}"})
        assert missing.status_code == 404


@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is absent")
@pytest.mark.usefixtures("scripted")
def test_the_report_in_a_browser_has_no_serious_axe_violation(
    engine: Engine, click_settings: Settings, tracked: Tracked
) -> None:
    from npm_tools import axe_source
    from playwright.sync_api import sync_playwright

    # With opens measured, so that their section and its warning are checked too.
    at = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)
    fetches = [
        RawOpen(tracked.edition_id, tracked.subscriber_id, at, method, "Mozilla/5.0", "")
        for method in ("GET", "HEAD")
    ]
    with immediate_transaction(engine) as connection:
        assert opens.record(connection, fetches) == 2
    html = _html(engine, click_settings.model_copy(update={"track_opens": True}), tracked)
    assert "Opens (unreliable)" in html
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(viewport={"width": 1024, "height": 900})
            page.route("**/*", lambda route: route.abort())
            page.set_content(html, wait_until="load")
            charts = page.eval_on_selector_all(
                "figure svg[role=img]", "nodes => nodes.map(n => n.getBoundingClientRect().width)"
            )
            assert len(charts) == 8 and all(width > 200 for width in charts)
            page.add_script_tag(content=axe_source())
            found = page.evaluate(
                """() => axe.run(document, {resultTypes: ['violations']}).then(r =>
                    r.violations.map(v => ({id: v.id, impact: v.impact})))"""
            )
        finally:
            browser.close()
    serious = [v for v in found if v["impact"] in ("serious", "critical")]
    assert serious == []
