"""A subscriber's personal data: `subscribers export-data` covers votes and every other table
that names them; `subscribers erase` removes them and keeps the counts and the suppression."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner
from votes_support import Voting

from digest import privacy
from digest.cli import app
from digest.config import Settings, get_settings
from digest.db import session_scope
from digest.delivery.models import Delivery, DeliveryState
from digest.editions.votes import ballot_for
from digest.votes import store
from digest.votes.models import Vote, VoteEvent
from digest.webhooks.models import WebhookEvent
from subscribers import lifecycle
from subscribers.models import AuditEntry, Cause, Subscriber

runner = CliRunner()
NOW = dt.datetime(2026, 11, 30, 9, tzinfo=dt.UTC)


@pytest.fixture
def cli(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., object]]:
    monkeypatch.setenv("DIGEST_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("DIGEST_ENVIRONMENT", "test")
    monkeypatch.setenv("DIGEST_SECRET_KEY", settings.secret_key.get_secret_value())
    get_settings.cache_clear()
    yield lambda *args: runner.invoke(app, ["subscribers", *args])
    get_settings.cache_clear()


@pytest.fixture
def history(engine: Engine, voting: Voting, new_subscriber: Callable[[str], int]) -> int:
    """Ada voted twice, got the edition, and a provider reported it delivered; Bob voted too."""
    bob = new_subscriber("bob@example.com")
    with engine.begin() as connection:
        for subscriber_id, choice in (
            (voting.subscriber_id, "ship"),
            (voting.subscriber_id, "skip"),
            (bob, "ship"),
        ):
            ballot = ballot_for(
                connection, voting.ref("deskpilot", choice, subscriber_id=subscriber_id)
            )
            assert ballot is not None
            store.record(connection, ballot, network="203.0.113.0/24", user_agent="ua", now=NOW)
    with session_scope(engine) as session:
        for subscriber_id, email in (
            (voting.subscriber_id, "ada@example.com"),
            (bob, "bob@example.com"),
        ):
            session.add(
                Delivery(
                    edition_id=voting.edition_id,
                    subscriber_id=subscriber_id,
                    email=email,
                    variant="all",
                    state=DeliveryState.SENT,
                    message_id=f"<{subscriber_id}@verdicts.example.com>",
                    sent_at=NOW,
                )
            )
        session.add(
            WebhookEvent(
                provider="postmark",
                event_key="k1",
                event_type="delivered",
                email="ada@example.com",
                raw={"Recipient": "ada@example.com"},
            )
        )
    return bob


def count(engine: Engine, model: type, *where: sa.ColumnElement[bool]) -> int:
    with engine.connect() as connection:
        query = sa.select(sa.func.count()).select_from(model)
        for clause in where:
            query = query.where(clause)
        return int(connection.execute(query).scalar_one())


def test_export_data_covers_votes_ledger_events_and_audit(
    cli: Callable[..., object], history: int, voting: Voting
) -> None:
    result = cli("export-data", "ADA@example.com")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    data = json.loads(result.stdout)  # type: ignore[attr-defined]
    assert data["subscriber"]["email"] == "ada@example.com"
    assert [(v["tool_slug"], v["choice"]) for v in data["votes"]] == [("deskpilot", "skip")]
    assert [p["choice"] for p in data["vote_presses"]] == ["ship", "skip"]
    assert [d["week"] for d in data["deliveries"]] == ["2026-W47"]
    assert [e["event_type"] for e in data["provider_events"]] == ["delivered"]
    assert data["audit"] and data["suppression"] is None
    assert "bob@example.com" not in result.stdout  # type: ignore[attr-defined]
    missing = cli("export-data", "nobody@example.com")
    assert missing.exit_code != 0  # type: ignore[attr-defined]


def test_erase_removes_votes_events_and_the_address_but_keeps_counts(
    cli: Callable[..., object], engine: Engine, history: int, voting: Voting
) -> None:
    with session_scope(engine) as session:
        lifecycle.unsubscribe(session, voting.subscriber_id, cause=Cause.LINK, actor="test")
    result = cli("erase", "ada@example.com", "--yes")
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    assert "votes 1, vote presses 2, provider events 1, ledger rows 1" in result.stdout  # type: ignore[attr-defined]
    assert count(engine, Subscriber, Subscriber.email == "ada@example.com") == 0  # type: ignore[arg-type]
    assert count(engine, Vote) == 1 and count(engine, VoteEvent) == 1  # Bob's stay
    assert count(engine, WebhookEvent) == 0
    assert count(engine, Delivery, Delivery.email == "ada@example.com") == 0  # type: ignore[arg-type]
    assert count(engine, Delivery, Delivery.state == "sent") == 2  # type: ignore[arg-type]
    assert count(engine, AuditEntry, AuditEntry.action == "remove") == 1  # type: ignore[arg-type]
    # The suppression outlives the erasure: the address can never be mailed again by mistake.
    with engine.connect() as connection:
        assert privacy.export_data(connection, "ada@example.com")["suppression"] is not None
    again = cli("erase", "ada@example.com", "--yes")
    assert again.exit_code != 0  # type: ignore[attr-defined]
