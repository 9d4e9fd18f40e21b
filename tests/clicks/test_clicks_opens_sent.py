"""The open pixel end to end: a send to the outbox writes .eml files whose HTML part carries
one pixel for each tracked subscriber (none by default, none in any text part, none for a
subscriber who turned tracking off, none in the web archive); a mail client loading the image
gets the GIF and the report counts one open, and no click."""

from __future__ import annotations

import email
import email.policy
import re
from email.message import EmailMessage
from pathlib import Path

import sqlalchemy as sa
from clicks_support import W47, add_subscriber
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from digest.backends.memory import MemoryBackend
from digest.backends.outbox import OutboxBackend
from digest.clicks.recorder import ClickRecorder
from digest.config import Settings
from digest.content.importer import import_paths
from digest.delivery.prepare import message_factories, prepare_edition
from digest.delivery.report import edition_report
from digest.delivery.sender import DeliveryEngine
from digest.web.app import create_app
from subscribers.models import Subscriber

PIXEL = re.compile(r'<img src="([^"]+/r/[^"]+)" width="1" height="1" alt=""[^>]*>')


def _send(
    engine: Engine, settings: Settings, outbox: Path
) -> tuple[int, dict[str, tuple[str, str]]]:
    """Send W47 to every subscriber: the edition, and each address's (HTML, text) as read back
    from its .eml."""
    outcome = prepare_edition(engine, settings, W47)
    assert outcome.edition is not None and outcome.edition.id is not None
    DeliveryEngine(
        engine, settings, OutboxBackend(outbox), message_factories(engine, settings)
    ).run()
    parts = {}
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        html, text = message.get_body(("html",)), message.get_body(("plain",))
        assert html is not None and text is not None
        parts[str(message["To"])] = (html.get_content(), text.get_content())
    return outcome.edition.id, parts


def _subscribers(engine: Engine, comparisons_dir: Path) -> None:
    assert import_paths(engine, [str(comparisons_dir)]).ok
    for name in ("ada", "bob", "cy"):
        add_subscriber(engine, f"{name}@example.com")
    with engine.begin() as connection:
        connection.execute(
            sa.update(Subscriber)
            .where(Subscriber.email == "cy@example.com")
            .values(track_clicks=False)  # type: ignore[arg-type]
        )


def test_no_pixel_by_default(
    engine: Engine, click_settings: Settings, comparisons_dir: Path, tmp_path: Path
) -> None:
    _subscribers(engine, comparisons_dir)
    _edition, sent = _send(engine, click_settings.model_copy(update={"send_rate": 1e6}), tmp_path)
    assert len(sent) == 3
    for html, text in sent.values():
        assert PIXEL.search(html) is None and 'width="1" height="1"' not in html
        assert "<img" not in text


def test_one_pixel_per_tracked_message_and_an_open_when_it_loads(
    engine: Engine, click_settings: Settings, comparisons_dir: Path, tmp_path: Path
) -> None:
    _subscribers(engine, comparisons_dir)
    settings = click_settings.model_copy(update={"send_rate": 1e6, "track_opens": True})
    edition, sent = _send(engine, settings, tmp_path)
    assert len(sent) == 3
    pixels = {}
    for to, (html, text) in sent.items():
        found = PIXEL.findall(html)
        if "cy@example.com" in to:
            assert found == [] and "/r/" not in html and "/r/" not in text
        else:
            assert len(found) == 1, to
            pixels[to] = found[0]
        assert "<img" not in text and 'width="1"' not in text
    assert len(set(pixels.values())) == 2  # each subscriber's own
    app = create_app(settings, backend=MemoryBackend(), engine=engine)
    with TestClient(app, follow_redirects=False) as client:
        archive = client.get(f"/editions/{edition}")
        assert archive.status_code == 200 and PIXEL.search(archive.text) is None
        assert "/r/" not in archive.text
        ada = next(url for to, url in pixels.items() if "ada@example.com" in to)
        image = client.get(
            ada.replace(settings.base_url, ""), headers={"User-Agent": "Mozilla/5.0"}
        )
        assert image.status_code == 200 and image.headers["content-type"] == "image/gif"
        recorder = app.state.click_recorder
        assert isinstance(recorder, ClickRecorder)
        recorder.flush()
    report = edition_report(engine, settings, edition, webhook={"delivered": 3})
    assert report.opens is not None
    assert (report.opens.counted, report.opens.openers, report.opens.rate) == (1, 1, 0.3333)
    assert (report.human, report.automated, report.clickers) == (0, 0, 0)
