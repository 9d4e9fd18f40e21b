"""The public archive pages in Chromium, light and dark: no serious or critical axe-core
violation on the list of editions nor on an edition's page (the email without personal parts).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from npm_tools import axe_source
from playwright.sync_api import sync_playwright
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient
from test_web_archive import _edition

from digest.config import Settings

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is absent"),
]


def test_archive_pages_have_no_blocking_axe_violation(
    client: TestClient, engine: Engine, settings: Settings, comparisons_dir: Path
) -> None:
    edition = _edition(engine, settings, comparisons_dir)
    pages = {
        "index": client.get("/editions").text,
        "edition": client.get(f"/editions/{edition.id}").text,
    }
    axe = axe_source()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            for scheme in ("light", "dark"):
                for name, html in pages.items():
                    page = browser.new_page(
                        viewport={"width": 375, "height": 800},
                        color_scheme="dark" if scheme == "dark" else "light",
                    )
                    page.route("**/*", lambda route: route.abort())
                    page.set_content(html, wait_until="load")
                    page.add_script_tag(content=axe)
                    found = page.evaluate(
                        """() => axe.run(document, {resultTypes: ['violations']}).then(r =>
                            r.violations.map(v => [v.id, v.impact, v.nodes.length]))"""
                    )
                    blocking = [v for v in found if v[1] in ("serious", "critical")]
                    assert blocking == [], (name, scheme, blocking)
                    page.close()
        finally:
            browser.close()
