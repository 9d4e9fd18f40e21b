"""The W47 email in a real browser: readable on a 375 px phone and at 640 px, every card
visible, nothing wider than the screen.

Screenshots go to ``$DIGEST_TEST_OUTPUT/render/<test>`` when that variable is set, else to the
test's tmp_path.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright
from render_support import READER, RendererFactory

from digest.content.document import ComparisonDoc

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WIDTHS = (375, 640)


@pytest.fixture
def screenshots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("DIGEST_TEST_OUTPUT")
    run = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    directory = Path(root) / "render" / run if root else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_w47_email_fits_phone_and_desktop_widths(
    make_renderer: RendererFactory, w47_docs: list[ComparisonDoc], screenshots: Path
) -> None:
    variant = make_renderer(w47_docs).variant_for([])
    assert variant is not None
    html = variant.message_for(READER, message_id="<b@verdicts.example.com>").html
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for width in WIDTHS:
                page = browser.new_page(viewport={"width": width, "height": 900})
                # No network: the email must not need any remote resource to lay out.
                page.route("**/*", lambda route: route.abort())
                page.set_content(html, wait_until="load")
                scroll_width = page.evaluate("document.documentElement.scrollWidth")
                assert scroll_width <= width, f"{scroll_width}px wide at a {width}px viewport"
                for doc in w47_docs:
                    heading = page.locator("div.h", has_text=doc.title).first
                    assert heading.is_visible(), (doc.title, width)
                    box = heading.bounding_box()
                    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width
                for text in ("Mixed · 50%", "Ship · 100%", "No community votes yet"):
                    assert page.get_by_text(text).first.is_visible()
                assert page.get_by_role("link", name="Unsubscribe").is_visible()
                page.screenshot(path=str(screenshots / f"w47-{width}.png"), full_page=True)
                page.close()
        finally:
            browser.close()
    assert sorted(path.name for path in screenshots.glob("*.png")) == [
        "w47-375.png",
        "w47-640.png",
    ]
