"""The open pixel on /r/{token}: a 43-byte transparent GIF, the fetch recorded off the request
path as an open (HEAD and scanner agents automated), never as a click; forged tokens get the
400 page; the report counts opens apart, marked unreliable; export-data, erase and the
retention cover them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator

import orjson
import pytest
import sqlalchemy as sa
from clicks_support import W47, Tracked, add_subscriber
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.testclient import TestClient
from typer.testing import CliRunner

from digest import privacy
from digest.backends.memory import MemoryBackend
from digest.cli import app as cli_app
from digest.clicks import opens, store
from digest.clicks.models import ClickHit, OpenDaily, OpenHit
from digest.clicks.opens import RawOpen
from digest.clicks.recorder import ClickRecorder
from digest.clicks.store import RawHit
from digest.config import Settings
from digest.db import immediate_transaction, session_scope
from digest.delivery.models import Delivery, DeliveryState
from digest.delivery.report import edition_report, report_text, retire_old_hits
from digest.delivery.report_html import report_html
from digest.web.app import create_app
from subscribers.models import Subscriber

BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1"
ACCEPTED = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def open_settings(click_settings: Settings) -> Settings:
    return click_settings.model_copy(update={"track_opens": True})


@pytest.fixture
def open_app(open_settings: Settings, engine: Engine) -> Starlette:
    return create_app(open_settings, backend=MemoryBackend(), engine=engine)


@pytest.fixture
def open_client(open_app: Starlette) -> Iterator[TestClient]:
    with TestClient(open_app, follow_redirects=False) as client:
        yield client


def pixel_link(engine: Engine, edition_id: int) -> int:
    with engine.connect() as connection:
        table = store.links(connection, edition_id)
    assert table[-1].kind == "open"
    return table[-1].link


def flush(app: Starlette) -> None:
    recorder = app.state.click_recorder
    assert isinstance(recorder, ClickRecorder)
    recorder.flush()


def stored(engine: Engine, table: type[OpenHit] | type[ClickHit]) -> list[tuple[str, str, str]]:
    with engine.connect() as connection:
        rows = connection.execute(
            sa.select(table.method, table.verdict, table.reason).order_by(table.id)  # type: ignore[arg-type]
        )
        return [(str(r[0]), str(r[1]), str(r[2])) for r in rows]


def test_the_pixel_is_a_43_byte_gif_and_each_fetch_an_open(
    open_client: TestClient, open_app: Starlette, tracked: Tracked, engine: Engine
) -> None:
    url = tracked.url(pixel_link(engine, tracked.edition_id))
    response = open_client.get(url, headers={"User-Agent": BROWSER})
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["cache-control"] == "no-store"
    assert "location" not in response.headers
    assert len(response.content) == 43 and response.content.startswith(b"GIF89a\x01\x00\x01\x00")
    assert response.content.endswith(b";")
    head = open_client.head(url, headers={"User-Agent": BROWSER})
    assert head.status_code == 200 and head.headers["content-type"] == "image/gif"
    assert open_client.get(url, headers={"User-Agent": "python-requests/2.32"}).status_code == 200
    flush(open_app)
    assert stored(engine, OpenHit) == [
        ("GET", "human", ""),
        ("HEAD", "automated", "head"),
        ("GET", "automated", "scanner-agent"),
    ]
    assert stored(engine, ClickHit) == []  # an open is never a click


def test_a_forged_pixel_token_gets_the_400_page(
    open_client: TestClient, open_app: Starlette, tracked: Tracked, engine: Engine
) -> None:
    link = pixel_link(engine, tracked.edition_id)
    token = tracked.url(link).removeprefix("/r/")
    edition, subscriber, number, signature = token.split(".")
    last = "B" if signature[-1] == "A" else "A"
    forged = [
        f"/r/{edition}.{subscriber}.{number}.{signature[:-1]}{last}",
        f"/r/{edition}.{int(subscriber) + 1}.{number}.{signature}",
        tracked.url(link + 1),  # signed, past the open pixel: the table's end
    ]
    for url in forged:
        for method in ("GET", "HEAD"):
            response = open_client.request(method, url)
            assert response.status_code == 400, url
            assert response.headers["content-type"].startswith("text/html")
    flush(open_app)
    assert stored(engine, OpenHit) == [] and stored(engine, ClickHit) == []


def test_with_opens_off_the_pixel_still_answers_and_records_nothing(
    client: TestClient, app: Starlette, tracked: Tracked, engine: Engine
) -> None:
    response = client.get(tracked.url(pixel_link(engine, tracked.edition_id)))
    assert response.status_code == 200 and len(response.content) == 43
    assert client.get(tracked.url(1)).status_code == 302  # clicks are still tracked
    flush(app)
    assert stored(engine, OpenHit) == []
    assert len(stored(engine, ClickHit)) == 1


def test_a_subscriber_who_turned_tracking_off_is_not_counted(
    open_client: TestClient, open_app: Starlette, tracked: Tracked, engine: Engine
) -> None:
    """A pixel in an email sent before the choice changed records nothing."""
    with session_scope(engine) as session:
        subscriber = session.get(Subscriber, tracked.subscriber_id)
        assert subscriber is not None
        subscriber.track_clicks = False
    url = tracked.url(pixel_link(engine, tracked.edition_id))
    assert open_client.get(url, headers={"User-Agent": BROWSER}).status_code == 200
    flush(open_app)
    assert stored(engine, OpenHit) == []


def _sent(engine: Engine, edition_id: int, subscribers: list[int]) -> None:
    with session_scope(engine) as session:
        for subscriber_id in subscribers:
            session.add(
                Delivery(
                    edition_id=edition_id,
                    subscriber_id=subscriber_id,
                    email=f"s{subscriber_id}@example.com",
                    variant="all",
                    state=DeliveryState.SENT,
                    message_id=f"<{edition_id}.{subscriber_id}@example.com>",
                    sent_at=ACCEPTED,
                )
            )


@pytest.fixture
def opened(tracked: Tracked, engine: Engine) -> list[int]:
    """Four subscribers sent W47. Ada opens (the pixel then two links within a second: no
    burst, as the pixel is no link), Bob's pixel is fetched twice, once by HEAD, and a
    scanner fetches Cy's; Dee does nothing."""
    people = [tracked.subscriber_id] + [
        add_subscriber(engine, f"{name}@example.com") for name in ("bob", "cy", "dee")
    ]
    _sent(engine, tracked.edition_id, people)
    ada, bob, cy, _dee = people
    at = ACCEPTED + dt.timedelta(minutes=30)
    net = "198.51.100.0/24"
    with immediate_transaction(engine) as connection:
        assert (
            opens.record(
                connection,
                [
                    RawOpen(tracked.edition_id, ada, at, "GET", BROWSER, net),
                    RawOpen(tracked.edition_id, bob, at, "GET", BROWSER, net),
                    RawOpen(tracked.edition_id, bob, at, "HEAD", BROWSER, net),
                    RawOpen(tracked.edition_id, cy, at, "GET", "Mozilla/5.0 Proofpoint", net),
                ],
            )
            == 4
        )
        second = dt.timedelta(milliseconds=400)
        assert (
            store.record(
                connection,
                [
                    RawHit(tracked.edition_id, ada, 1, at + second, "GET", BROWSER, net),
                    RawHit(tracked.edition_id, ada, 2, at + 2 * second, "GET", BROWSER, net),
                ],
            )
            == 2
        )
    return people


def test_opens_are_counted_apart_and_marked_unreliable(
    opened: list[int], tracked: Tracked, engine: Engine, open_settings: Settings
) -> None:
    report = edition_report(engine, open_settings, tracked.edition_id, webhook={"delivered": 4})
    # The clicks are exactly Ada's two: no burst, no open among them.
    assert (report.human, report.clickers, report.automated) == (2, 1, 0)
    assert report.removed["burst"] == 0 and sum(report.hours) == 2
    assert report.trend[-1].human_clicks == 2 and report.trend[-1].clickers == 1
    assert report.ctr == 0.25
    assert report.opens is not None
    data = report.as_json()["opens"]
    assert data["reported"] is True and data["reliable"] is False
    assert "Apple Mail Privacy Protection" in data["note"]
    assert (data["hits"], data["counted"], data["unique_openers"]) == (4, 2, 2)
    assert data["automated_by_rule"] == {"head": 1, "scanner-agent": 1}
    assert (data["open_rate"], data["rate_of"]) == (0.5, "delivered")
    # Without delivery events the rate is over the messages sent.
    sent_only = edition_report(engine, open_settings, tracked.edition_id).as_json()["opens"]
    assert (sent_only["open_rate"], sent_only["rate_of"]) == (0.5, "sent")
    text = report_text(report)
    assert (
        "opens (unreliable): 2 pixel fetches from 2 readers (open rate 50.0% of delivered)" in text
    )
    html = report_html(report, "Verdicts")
    assert "Opens (unreliable)" in html and "Not reliable." in html
    assert '<table id="opens">' in html


def test_with_opens_off_the_report_says_they_are_not_measured(
    tracked: Tracked, engine: Engine, click_settings: Settings
) -> None:
    data = edition_report(engine, click_settings, tracked.edition_id).as_json()["opens"]
    assert data["reported"] is False and data["reliable"] is False
    assert "not measured" in data["note"] and "hits" not in data
    html = report_html(edition_report(engine, click_settings, tracked.edition_id))
    assert "Opens are not measured" in html and '<table id="opens">' not in html


def test_digest_report_json_shows_opens(
    opened: list[int],
    tracked: Tracked,
    click_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", click_settings.database_url)
    monkeypatch.setenv("DIGEST_SECRET_KEY", click_settings.secret_key.get_secret_value())
    monkeypatch.setenv("DIGEST_TRACK_OPENS", "on")
    result = CliRunner().invoke(cli_app, ["report", "--edition", str(tracked.edition_id), "--json"])
    assert result.exit_code == 0, result.output
    data = orjson.loads(result.stdout)
    assert data["clicks"] == {"human": 2, "automated": 0}
    assert data["opens"]["reliable"] is False and data["opens"]["unique_openers"] == 2


def test_export_and_erase_cover_opens(opened: list[int], tracked: Tracked, engine: Engine) -> None:
    with engine.connect() as connection:
        data = privacy.export_data(connection, "bob@example.com")
    assert [(h["week"], h["method"], h["verdict"]) for h in data["open_hits"]] == [
        ("2026-W47", "GET", "human"),
        ("2026-W47", "HEAD", "automated"),
    ]
    assert data["open_hits"][0]["network"] == "198.51.100.0/24"
    assert data["link_hits"] == []
    with immediate_transaction(engine) as connection:
        erased = privacy.erase(connection, "bob@example.com", actor="test")
    assert (erased.open_hits, erased.link_hits) == (2, 0)
    with engine.connect() as connection:
        left = connection.execute(sa.select(OpenHit.subscriber_id)).scalars().all()  # type: ignore[call-overload]
    assert sorted(left) == sorted([opened[0], opened[2]])


def test_old_opens_become_daily_counts(
    opened: list[int], tracked: Tracked, engine: Engine, open_settings: Settings
) -> None:
    before = edition_report(engine, open_settings, tracked.edition_id).opens
    assert before is not None and (before.hits, before.counted, before.openers) == (4, 2, 2)
    late = ACCEPTED + dt.timedelta(days=2)
    with immediate_transaction(engine) as connection:
        opens.record(connection, [RawOpen(tracked.edition_id, opened[3], late, "GET", BROWSER, "")])
    now = ACCEPTED + dt.timedelta(days=open_settings.click_retention_days, hours=1)
    assert retire_old_hits(engine, open_settings, now) == 4 + 2  # four opens, two clicks
    with engine.connect() as connection:
        raw = connection.execute(sa.select(sa.func.count()).select_from(OpenHit)).scalar_one()
        daily = connection.execute(
            sa.select(OpenDaily.verdict, OpenDaily.reason, OpenDaily.hits).order_by(  # type: ignore[call-overload]
                OpenDaily.verdict, OpenDaily.reason
            )  # type: ignore[arg-type]
        ).all()
    assert raw == 1  # Dee's, two days later, stays raw
    assert [tuple(row) for row in daily] == [
        ("automated", "head", 1),
        ("automated", "scanner-agent", 1),
        ("human", "", 2),
    ]
    after = edition_report(engine, open_settings, tracked.edition_id).opens
    assert after is not None
    # The folded counts keep every fetch and its rule; only raw fetches name their readers.
    assert (after.hits, after.counted, after.openers) == (5, 3, 1)
    assert after.removed == {"head": 1, "scanner-agent": 1}


def test_the_preference_covers_the_pixel(
    open_settings: Settings, engine: Engine, tracked: Tracked
) -> None:
    from subscribers.tokens import Purpose

    token = tracked.signer.make(tracked.subscriber_id, Purpose.PREFERENCES)
    only_opens = open_settings.model_copy(update={"track_clicks": False})
    for settings, label in (
        (open_settings, "Count my clicks on the links and when I open the email"),
        (only_opens, "Count when I open the email (a hidden image)"),
    ):
        app = create_app(settings, backend=MemoryBackend(), engine=engine)
        with TestClient(app) as client:
            page = client.get(f"/preferences/{token}").text
            assert label in page and 'name="track_clicks" value="1" checked' in page
    # With clicks off and opens on, the box still turns tracking off.
    with TestClient(create_app(only_opens, backend=MemoryBackend(), engine=engine)) as client:
        page = client.get(f"/preferences/{token}").text
        csrf = page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        saved = client.post(
            f"/preferences/{token}", data={"csrf": csrf, "action": "save"}, follow_redirects=False
        )
        assert saved.status_code == 303
    with session_scope(engine) as session:
        subscriber = session.get(Subscriber, tracked.subscriber_id)
        assert subscriber is not None and subscriber.track_clicks is False


def test_the_preview_as_a_subscriber_is_their_message_pixel_included(
    open_settings: Settings, engine: Engine, tracked: Tracked
) -> None:
    from digest.editions.preview import build_preview

    preview = build_preview(open_settings, engine, W47, email="ada@example.com")
    assert preview.message is not None
    assert preview.message.html.count('width="1" height="1" alt=""') == 1
    assert any("open pixel of ada@example.com" in note for note in preview.notes)
    sample = build_preview(open_settings, engine, W47)
    assert sample.message is not None
    assert not any("open pixel" in note for note in sample.notes)
