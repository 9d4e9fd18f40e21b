"""The W47 email in a real browser, light and dark, at 375, 640 and 1024 px: nothing wider
than the screen, every card visible, no serious or critical axe-core violation, a designed
dark palette (not the light one), and a phone height within the goal.

Screenshots go to ``$DIGEST_TEST_OUTPUT/render/<test>`` when that variable is set, else to the
test's tmp_path.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from npm_tools import axe_source
from playwright.sync_api import Browser, Page, sync_playwright
from render_support import READER, RendererFactory

from digest.content.document import ComparisonDoc

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="Debian's chromium is absent"),
]

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS = (375, 640, 1024)
SCHEMES = ("light", "dark")
MAX_PHONE_HEIGHT = 5000  # px at 375 px for six comparisons
BLOCKING = ("serious", "critical")


@pytest.fixture
def screenshots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("DIGEST_TEST_OUTPUT")
    run = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    directory = Path(root) / "render" / run if root else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=shutil.which("chromium"), args=CHROMIUM_ARGS
        )
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser: Browser, html: str, width: int, scheme: str) -> Page:
    page = browser.new_page(
        viewport={"width": width, "height": 900},
        color_scheme="dark" if scheme == "dark" else "light",
    )
    # No network: the email must not need any remote resource to lay out.
    page.route("**/*", lambda route: route.abort())
    page.set_content(html, wait_until="load")
    return page


def axe_violations(page: Page) -> list[dict[str, Any]]:
    """Serious and critical axe-core violations of the page, as (id, impact, targets)."""
    page.add_script_tag(content=axe_source())
    found: list[dict[str, Any]] = page.evaluate(
        """() => axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(
            v => ({id: v.id, impact: v.impact, nodes: v.nodes.slice(0, 3).map(n => n.target)})))"""
    )
    return [v for v in found if v["impact"] in BLOCKING]


def test_w47_email_light_and_dark_at_three_widths(
    make_renderer: RendererFactory,
    w47_docs: list[ComparisonDoc],
    screenshots: Path,
    browser: Browser,
) -> None:
    variant = make_renderer(w47_docs).variant_for([])
    assert variant is not None
    html = variant.message_for(READER, message_id="<b@verdicts.example.com>").html
    backgrounds: dict[str, str] = {}
    for scheme in SCHEMES:
        for width in WIDTHS:
            page = open_page(browser, html, width, scheme)
            scroll_width = page.evaluate("document.documentElement.scrollWidth")
            assert scroll_width <= width, f"{scroll_width}px wide at {width}px ({scheme})"
            for doc in w47_docs:
                heading = page.locator("h2", has_text=doc.title).first
                assert heading.is_visible(), (doc.title, width, scheme)
                box = heading.bounding_box()
                assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
            assert page.get_by_text("The panel would skip both").first.is_visible()
            assert page.get_by_role("link", name="Unsubscribe").is_visible()
            assert page.locator("h1").count() == 1
            if width == 375:
                height = page.evaluate("document.documentElement.scrollHeight")
                assert height <= MAX_PHONE_HEIGHT, f"{height}px tall at 375px ({scheme})"
            backgrounds[scheme] = page.evaluate(
                "getComputedStyle(document.querySelector('table.cd')).backgroundColor"
            )
            page.screenshot(path=str(screenshots / f"w47-{scheme}-{width}.png"), full_page=True)
            violations = axe_violations(page)
            assert violations == [], (scheme, width, violations)
            page.close()
    assert backgrounds["light"] == "rgb(255, 255, 255)"
    assert backgrounds["dark"] != backgrounds["light"]  # a designed dark palette
    assert len(list(screenshots.glob("*.png"))) == len(WIDTHS) * len(SCHEMES)


def test_archive_copy_has_no_blocking_axe_violation(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc], browser: Browser
) -> None:
    html = make_renderer(w47_docs).archive_html()
    for scheme in SCHEMES:
        page = open_page(browser, html, 640, scheme)
        assert axe_violations(page) == [], scheme
        page.close()


def test_a_folded_edition_of_twenty_reads_well_on_a_phone(
    make_renderer: RendererFactory,
    all_docs: list[ComparisonDoc],
    screenshots: Path,
    browser: Browser,
) -> None:
    from test_render_budget import pool

    variant = make_renderer(pool(all_docs, 20)).variant_for([])
    assert variant is not None and variant.fit is not None and variant.fit.folded
    html = variant.message_for(READER, message_id="<f@verdicts.example.com>").html
    for scheme in SCHEMES:
        page = open_page(browser, html, 375, scheme)
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        heading = page.locator("h2", has_text=f"And {variant.fit.folded} more verdicts")
        assert heading.is_visible()
        assert page.get_by_role("link", name="Unsubscribe").is_visible()
        page.screenshot(path=str(screenshots / f"w20-{scheme}-375.png"), full_page=True)
        assert axe_violations(page) == [], scheme
        page.close()
