"""The subscription journey in a real browser on a phone-sized screen, against a real server.

Sign up in the form, open the confirmation link from the ``.eml`` file in the outbox, change
preferences, then unsubscribe with the button. Screenshots of every step go to
``$DIGEST_TEST_OUTPUT/browser/<test>`` when that variable is set, else to the test's tmp_path.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import ViewportSize, sync_playwright
from sqlalchemy.engine import Engine
from sqlmodel import col, select
from starlette.applications import Starlette

from digest.config import Settings
from digest.db import session_scope
from digest.web.app import create_app
from subscribers.models import AuditEntry, Cause, Status, Subscriber
from subscribers.tokens import signer_from_settings, unsubscribe_url

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
PHONE: ViewportSize = {"width": 375, "height": 812}


@pytest.fixture
def screenshots(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    root = os.environ.get("DIGEST_TEST_OUTPUT")
    run = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")
    directory = Path(root) / "browser" / run if root else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _confirm_link(outbox: Path, base_url: str) -> str:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        files = sorted(outbox.glob("*.eml")) if outbox.is_dir() else []
        if files:
            message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
            assert isinstance(message, email.message.EmailMessage)
            part = message.get_body(preferencelist=("plain",))
            assert part is not None
            found = re.search(re.escape(base_url) + r"/confirm/\S+", part.get_content())
            assert found is not None, part.get_content()
            return found.group(0)
        time.sleep(0.1)
    raise AssertionError(f"no confirmation email in {outbox}")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_subscription_journey_on_a_phone(
    settings: Settings,
    engine: Engine,
    tmp_path: Path,
    screenshots: Path,
    live_server: Callable[[Callable[[str], Starlette]], str],
) -> None:

    outbox = tmp_path / "browser-outbox"
    served: dict[str, Settings] = {}

    def make_app(base_url: str) -> Starlette:
        served["settings"] = settings.model_copy(
            update={"base_url": base_url, "email_backend": "outbox", "outbox_dir": outbox}
        )
        return create_app(served["settings"], engine=engine)

    base_url = live_server(make_app)
    problems: list[str] = []

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(
                viewport=PHONE, device_scale_factor=2, is_mobile=True, timezone_id="Europe/Berlin"
            )
            page = context.new_page()
            page.on("console", lambda msg: msg.type == "error" and problems.append(msg.text))
            page.on("pageerror", lambda exc: problems.append(str(exc)))
            page.on(
                "response",
                lambda response: (
                    response.status >= 400 and problems.append(f"{response.status} {response.url}")
                ),
            )

            def shot(name: str) -> None:
                page.screenshot(path=str(screenshots / f"{name}.png"), full_page=True)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= PHONE["width"], f"{name}: {width}px wide, scrolls sideways"

            # 1. Sign up.
            page.goto(f"{base_url}/subscribe")
            assert page.title().startswith("Subscribe")
            page.get_by_label("Email address").fill("reader@example.com")
            page.get_by_label("Name (optional)", exact=True).fill("Rea Der")
            page.get_by_label("Developer Tools").check()
            shot("01-subscribe")
            page.get_by_role("button", name="Subscribe").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", name="Check your inbox").is_visible()
            shot("02-check-inbox")

            # 2. Confirm from the email.
            page.goto(_confirm_link(outbox, base_url))
            assert page.get_by_role("heading", name="Confirm your subscription").is_visible()
            page.get_by_role("button", name="Confirm").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", name="You're subscribed").is_visible()
            shot("03-confirmed")

            # 3. Preferences.
            page.get_by_role("link", name=re.compile("Choose your categories")).click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", name="Your preferences").is_visible()
            assert page.get_by_label("Developer Tools").is_checked()
            page.get_by_label("Image & Video").check()
            page.get_by_label("Pause the newsletter for now").check()
            page.get_by_role("button", name="Save preferences").click()
            page.wait_for_load_state()
            assert page.get_by_text("Your preferences are saved.").is_visible()
            assert page.get_by_label("Image & Video").is_checked()
            shot("04-preferences-saved")

            # 4. Unsubscribe with the button on the page the email's link opens.
            with session_scope(engine) as session:
                subscriber = session.exec(select(Subscriber)).one()
            assert subscriber.id is not None
            active = served["settings"]
            page.goto(unsubscribe_url(active, signer_from_settings(active), subscriber.id))
            assert page.get_by_role("heading", name="Unsubscribe?").is_visible()
            shot("05-unsubscribe")
            page.get_by_role("button", name="Unsubscribe").click()
            page.wait_for_load_state()
            assert page.get_by_role("heading", name="You're unsubscribed").is_visible()
            shot("06-unsubscribed")
        finally:
            browser.close()

    assert problems == []  # no script error, no CSP violation
    with session_scope(engine) as session:
        final = session.exec(select(Subscriber)).one()
        actions = [
            (entry.action, entry.cause)
            for entry in session.exec(select(AuditEntry).order_by(col(AuditEntry.id)))
        ]
    assert final.status == Status.UNSUBSCRIBED
    assert final.name == "Rea Der"
    assert final.timezone == "Europe/Berlin"  # filled in by the page's script
    assert final.categories == ["Developer Tools", "Image & Video"]
    assert final.paused is True
    assert actions == [
        ("signup", Cause.SIGNUP),
        ("confirm", Cause.CONFIRM),
        ("preferences", Cause.PREFERENCE_PAGE),
        ("unsubscribe", Cause.LINK),
    ]
    assert len(list(screenshots.glob("*.png"))) == 6
