"""The edition report counts people only: scripted hits from a gateway sweeping every link, a
HEAD, a honeypot fetch and a too-early fetch are removed, each under its rule; the person's
click is counted for its comparison and tool, and ``digest report --json`` says so."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from clicks_support import Tracked, add_subscriber
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from digest.cli import app
from digest.clicks import store
from digest.clicks.store import RawHit
from digest.config import Settings
from digest.db import immediate_transaction, session_scope
from digest.delivery.models import Delivery, DeliveryState
from digest.delivery.report import edition_report

ACCEPTED = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC)
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


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


def _hits(engine: Engine, edition_id: int, people: list[int]) -> int:
    """Scripted hits; the link the person clicks."""
    with engine.connect() as connection:
        table = store.links(connection, edition_id)
    tool = next(link for link in table if link.kind == "tool")
    gateway, prefetcher, person, early = people
    at = ACCEPTED + dt.timedelta(minutes=5)
    hits = [
        *(
            RawHit(
                edition_id,
                gateway,
                link.link,
                at + dt.timedelta(seconds=n * 0.1),
                "GET",
                "Mozilla/5.0 (Windows NT 10.0) Chrome/120.0",
                "40.94.0.0/24",
            )
            for n, link in enumerate(table[1:9])
        ),
        RawHit(edition_id, gateway, tool.link, at, "HEAD", BROWSER, "40.94.0.0/24"),
        RawHit(edition_id, prefetcher, 0, at, "GET", "Mozilla/5.0 Check", "52.1.2.0/24"),
        RawHit(
            edition_id,
            prefetcher,
            tool.link,
            at + dt.timedelta(minutes=9),
            "GET",
            "Mozilla/5.0 Check",
            "52.1.2.0/24",
        ),
        RawHit(
            edition_id,
            early,
            tool.link,
            ACCEPTED + dt.timedelta(seconds=4),
            "GET",
            BROWSER,
            "203.0.113.0/24",
        ),
        RawHit(
            edition_id,
            person,
            tool.link,
            ACCEPTED + dt.timedelta(minutes=14),
            "GET",
            BROWSER,
            "198.51.100.0/24",
        ),
    ]
    with immediate_transaction(engine) as connection:
        assert store.record(connection, hits) == len(hits)
    return tool.link


@pytest.fixture
def scripted(tracked: Tracked, engine: Engine) -> tuple[int, int]:
    people = [tracked.subscriber_id] + [
        add_subscriber(engine, f"reader{n}@example.com") for n in range(3)
    ]
    _sent(engine, tracked.edition_id, people)
    return _hits(engine, tracked.edition_id, people), people[2]


def test_the_report_counts_exactly_the_person(
    scripted: tuple[int, int], tracked: Tracked, engine: Engine, click_settings: Settings
) -> None:
    _tool_link, _person = scripted
    report = edition_report(engine, click_settings, tracked.edition_id)
    assert (report.human, report.clickers, report.sent) == (1, 1, 4)
    assert report.automated == 12
    assert report.removed == {
        "head": 1,
        "scanner-agent": 0,
        "honeypot": 2,
        "burst": 8,
        "too-soon": 1,
    }
    assert report.ctr == 0.25
    clicked = [c for c in report.comparisons if c.clicks.human]
    assert len(clicked) == 1 and clicked[0].clicks.clickers == 1
    tools = [t for t in clicked[0].tools if t.clicks.human]
    assert len(tools) == 1 and tools[0].clicks.human == 1
    assert sum(report.hours) == 1 and report.hours[8] == 1
    assert report.trend[-1].human_clicks == 1 and report.trend[-1].edition_id == tracked.edition_id


def test_digest_report_json(
    scripted: tuple[int, int],
    tracked: Tracked,
    click_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIGEST_DATABASE_URL", click_settings.database_url)
    monkeypatch.setenv("DIGEST_SECRET_KEY", click_settings.secret_key.get_secret_value())
    monkeypatch.setenv("DIGEST_BASE_URL", click_settings.base_url)
    for args in (["--edition", str(tracked.edition_id)], ["--week", "2026-W47"]):
        result = CliRunner().invoke(app, ["report", *args, "--json"])
        assert result.exit_code == 0, result.output
        data = orjson.loads(result.stdout)
        assert data["clicks"] == {"human": 1, "automated": 12}
        assert data["sent"] == 4 and data["opens"]["reliable"] is False
    text = CliRunner().invoke(app, ["report", "--week", "2026-W47"])
    assert text.exit_code == 0 and "1 human from 1 readers" in text.stdout
    missing = CliRunner().invoke(app, ["report", "--week", "2020-W01"])
    assert missing.exit_code != 0
