"""The commands: ``send`` (dry run, test copy, a full send and its exit codes), ``status``
(text and the JSON shape), ``resend --failed-only``, ``cancel`` and ``worker --once``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from delivery_support import (
    DELIVERY,
    POSTMARK_TOKEN,
    W47,
    FakePostmark,
    add_subscribers,
    digest_env,
    ledger,
    start_digest,
    states,
)
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from digest.cli.delivery import app
from digest.config import Settings, get_settings
from digest.content.weeks import IsoWeek
from digest.db import session_scope
from digest.delivery.ledger import cancel, resend
from digest.delivery.prepare import prepare_edition
from digest.errors import ConflictError, NotFoundError
from digest.state import write_state
from digest.webhooks.models import WebhookEvent
from subscribers import suppression
from subscribers.models import Subscriber, SuppressionReason

runner = CliRunner()


@pytest.fixture
def cli(
    loaded: Engine,
    send_settings: Settings,
    postmark: FakePostmark,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Engine]:
    """The commands' settings: the test database, sending through the fake Postmark."""
    for name, value in {
        "DATABASE_URL": send_settings.database_url,
        "ENVIRONMENT": "test",
        "SECRET_KEY": send_settings.secret_key.get_secret_value(),
        "TIMEZONE": "UTC",
        "EMAIL_BACKEND": "postmark",
        "EMAIL_API_URL": postmark.url,
        "EMAIL_API_KEY": POSTMARK_TOKEN,
        "SEND_RATE": "100000",
        "SEND_BATCH_SIZE": "20",
    }.items():
        monkeypatch.setenv(f"DIGEST_{name}", value)
    get_settings.cache_clear()
    yield loaded
    get_settings.cache_clear()


def test_every_command_has_help() -> None:
    for command in ("send", "status", "resend", "cancel", "worker"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0, command
        assert result.output.strip()


def test_send_sends_the_week_and_exits_zero(cli: Engine, postmark: FakePostmark) -> None:
    add_subscribers(cli, 50)
    result = runner.invoke(app, ["send", "--week", "2026-W47"])
    assert result.exit_code == 0, result.output
    assert "created: Deskpilot vs Ticketsmith, and 5 more verdicts" in result.output
    assert "is sent" in result.output
    assert states(cli) == {"sent": 50}
    assert sum(postmark.message_ids().values()) == 50
    again = runner.invoke(app, ["send", "--week", "2026-W47"])
    assert again.exit_code == 0 and "resuming" in again.output
    assert sum(postmark.message_ids().values()) == 50


@pytest.mark.parametrize("dry_run", [False, True], ids=["send", "dry-run"])
def test_send_without_enough_comparisons_exits_66_like_preview(cli: Engine, dry_run: bool) -> None:
    args = ["send", "--week", "2026-W30", *(["--dry-run"] if dry_run else [])]
    result = runner.invoke(app, args)
    assert isinstance(result.exception, NotFoundError)
    assert result.exception.exit_code == 66  # the preview of such a week exits 66 too
    assert "no edition for 2026-W30: 0 new comparisons" in str(result.exception)


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "send"])
def test_send_says_who_gets_nothing_and_why(
    cli: Engine, postmark: FakePostmark, dry_run: bool
) -> None:
    ids = add_subscribers(cli, 8, categories=[[]])  # every category
    with session_scope(cli) as session:
        connection = session.connection()
        subscriber = Subscriber.__table__  # type: ignore[attr-defined]
        connection.execute(
            subscriber.update().where(subscriber.c.id.in_(ids[:2])).values(paused=True)
        )
        connection.execute(
            subscriber.update().where(subscriber.c.id.in_(ids[2:5])).values(categories=["Robotics"])
        )
        connection.execute(
            subscriber.update().where(subscriber.c.id == ids[5]).values(status="pending")
        )
        suppression.add(session, "reader6@example.com", SuppressionReason.COMPLAINED)
    args = ["send", "--week", "2026-W47", *(["--dry-run"] if dry_run else [])]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert (
        "6 active subscribers get nothing this week: 2 paused, 1 on the suppression list, "
        "3 follow only categories without a comparison this week"
    ) in result.stdout
    if not dry_run:
        assert sum(postmark.message_ids().values()) == 1  # reader7, the only one mailable


def test_send_exits_non_zero_when_rows_failed(cli: Engine, postmark: FakePostmark) -> None:
    add_subscribers(cli, 6)
    postmark.rejected = {"reader2@example.com"}
    result = runner.invoke(app, ["send", "--week", "2026-W47"])
    assert result.exit_code == 1
    assert "1 failed, 0 unknown" in result.output
    assert "digest resend --edition 1 --failed-only" in result.output


def test_send_with_bad_credentials_exits_69_with_nothing_sent(
    cli: Engine, send_settings: Settings, postmark: FakePostmark, tmp_path: Path
) -> None:
    add_subscribers(cli, 6)
    env = digest_env(send_settings.database_url, postmark, email_api_key="wrong")
    process = start_digest(["send", "--week", "2026-W47"], env, tmp_path / "send.log")
    assert process.wait(timeout=60) == 69
    output = (tmp_path / "send.log").read_text()
    assert "error: the provider refused the request" in output and "credentials" in output
    assert states(cli) == {"pending": 6} and postmark.accepted == []


def test_send_while_paused_exits_75(cli: Engine, postmark: FakePostmark) -> None:
    add_subscribers(cli, 6)
    with session_scope(cli) as session:
        write_state(session, "paused", {"paused": True})
    result = runner.invoke(app, ["send", "--week", "2026-W47"])
    assert result.exit_code == 75 and "paused" in result.output
    assert states(cli) == {"pending": 6} and postmark.accepted == []


def test_dry_run_changes_nothing(cli: Engine, postmark: FakePostmark) -> None:
    add_subscribers(cli, 8)
    result = runner.invoke(app, ["send", "--week", "2026-W47", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "would create the edition of 2026-W47" in result.output
    assert "subject: Deskpilot vs Ticketsmith, and 5 more verdicts" in result.output
    assert "recipients: 8 in 4 variant(s)" in result.output
    assert re.search(
        r"size: HTML \d+\.\d KB of a 90 KB budget; all 6 comparisons as full cards", result.output
    )
    assert ledger(cli) == [] and postmark.calls == 0


def test_a_test_copy_touches_no_ledger(cli: Engine, postmark: FakePostmark) -> None:
    result = runner.invoke(app, ["send", "--week", "2026-W47", "--to", "Editor@Example.com"])
    assert result.exit_code == 0, result.output
    assert "test copy of 2026-W47 sent to Editor@Example.com" in result.output
    assert [address for _id, address in postmark.accepted] == ["Editor@example.com"]
    assert ledger(cli) == []
    with cli.connect() as connection:
        assert connection.execute(sa.text("SELECT count(*) FROM edition")).scalar_one() == 0


def test_a_test_copy_subject_is_marked(
    loaded: Engine, send_settings: Settings, backend: object
) -> None:
    from digest.backends.memory import MemoryBackend
    from digest.delivery.prepare import send_test_copy

    memory = MemoryBackend()
    result = send_test_copy(loaded, send_settings, memory, W47, "editor@example.com")
    assert result.accepted
    (message,) = memory.sent
    assert message.subject == "[TEST] Deskpilot vs Ticketsmith, and 5 more verdicts"


def test_status_json_has_the_documented_shape(
    cli: Engine, send_settings: Settings, postmark: FakePostmark
) -> None:
    add_subscribers(cli, 10)
    postmark.rejected = {"reader1@example.com"}
    runner.invoke(app, ["send", "--week", "2026-W47"])
    sent = [row for row in ledger(cli) if row.state == "sent"]
    with session_scope(cli) as session:
        for kind, row in (("delivered", sent[0]), ("delivered", sent[1]), ("bounced", sent[2])):
            session.add(
                WebhookEvent(
                    provider="postmark",
                    event_key=f"{kind}-{row.id}",
                    event_type=kind,
                    message_id=row.message_id,
                    delivery_id=row.id,
                    raw={},
                )
            )
    result = runner.invoke(app, ["status", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["edition"] == 1 and data["week"] == "2026-W47"
    assert data["counts"] == {
        "pending": 0,
        "claimed": 0,
        "sent": 9,
        "failed": 1,
        "unknown": 0,
        "skipped": 0,
    }
    assert data["status"] == "sent" and data["webhook"] == {"delivered": 2, "bounced": 1}
    # Sent, but not to everyone: said so; no ETA once nothing is sending.
    assert data["state"] == "sent with 1 failures"
    assert data["deferred"] == 0 and data["next_retry_at"] is None
    assert data["eta_seconds"] is None
    text = runner.invoke(app, ["status", "--edition", "1"])
    assert text.exit_code == 0 and "sent            9" in text.output
    assert "sent with 1 failures" in text.output and "ETA" not in text.output


def test_status_on_a_fresh_database(cli: Engine) -> None:
    result = runner.invoke(app, ["status"])
    assert result.exit_code == 0
    assert "no edition yet" in result.output and "scheduler: not running" in result.output
    data = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert data["edition"] is None and data["state"] is None
    assert data["counts"] == dict.fromkeys(
        ("pending", "claimed", "sent", "failed", "unknown", "skipped"), 0
    )
    assert data["scheduler"]["heartbeat"] is None


def test_status_json_reports_an_error_as_json(cli: Engine) -> None:
    result = runner.invoke(app, ["status", "--json", "--edition", "99"])
    assert result.exit_code != 0
    assert json.loads(result.stdout) == {"error": "no edition with id 99"}


def test_status_shows_the_edition_in_progress_and_why_it_waits(
    cli: Engine, send_settings: Settings
) -> None:
    add_subscribers(cli, 5)
    prepare_edition(cli, send_settings, W47)
    later = prepare_edition(
        cli, send_settings.model_copy(update={"min_new_comparisons": 0}), IsoWeek(2026, 48)
    )
    assert later.edition is not None and later.edition.id == 2
    with cli.begin() as connection:
        connection.execute(sa.text("UPDATE edition SET status = 'sent' WHERE id = 2"))
    with session_scope(cli) as session:
        write_state(
            session, "paused", {"paused": True, "by": "ops@host", "at": "2026-11-23T09:00:00+00:00"}
        )
    data = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    # Edition 1 is still in progress: it is shown, not the highest week.
    assert (
        data["edition"] == 1 and data["state"] == "paused by ops@host at 2026-11-23T09:00:00+00:00"
    )
    assert data["eta_seconds"] is None and data["counts"]["pending"] == 5


def test_resend_failed_only_then_send_again(
    cli: Engine, postmark: FakePostmark, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_subscribers(cli, 6)
    monkeypatch.setenv("DIGEST_SEND_RETRY_WINDOW", "0.01")
    monkeypatch.setenv("DIGEST_SEND_CONCURRENCY", "1")
    get_settings.cache_clear()
    for _ in range(2):
        postmark.fail_next(503, b'{"Message":"down"}')
    assert runner.invoke(app, ["send", "--week", "2026-W47"]).exit_code == 1
    assert states(cli) == {"failed": 6}
    refused = runner.invoke(app, ["resend", "--edition", "1"])
    assert refused.exit_code != 0 and "--failed-only" in refused.output
    result = runner.invoke(app, ["resend", "--edition", "1", "--failed-only"])
    assert result.exit_code == 0 and "6 row(s) of edition 1 are pending again" in result.output
    assert {(row.state, row.attempts) for row in ledger(cli)} == {("pending", 0)}
    assert runner.invoke(app, ["send", "--week", "2026-W47"]).exit_code == 0
    assert states(cli) == {"sent": 6}
    assert set(postmark.addresses().values()) == {1}


def test_resend_leaves_unknown_rows_alone_unless_asked(
    loaded: Engine, send_settings: Settings
) -> None:
    add_subscribers(loaded, 4)
    outcome = prepare_edition(loaded, send_settings, W47)
    assert outcome.edition is not None and outcome.edition.id is not None
    edition_id = outcome.edition.id
    with loaded.begin() as connection:
        connection.execute(sa.update(DELIVERY).values(state="unknown", attempts=1))
        connection.execute(sa.text("UPDATE edition SET status = 'sent'"))
    assert resend(loaded, edition_id) == 0
    assert states(loaded) == {"unknown": 4}
    assert resend(loaded, edition_id, include_unknown=True) == 4
    assert states(loaded) == {"pending": 4}
    with loaded.connect() as connection:
        status = connection.execute(sa.text("SELECT status FROM edition")).scalar_one()
    assert status == "sending"


def test_cancel_skips_what_was_not_sent(cli: Engine, send_settings: Settings) -> None:
    add_subscribers(cli, 5)
    outcome = prepare_edition(cli, send_settings, W47)
    assert outcome.edition is not None
    result = runner.invoke(app, ["cancel", "--edition", "1"])
    assert result.exit_code == 0 and "5 row(s) will not be sent" in result.output
    assert states(cli) == {"skipped": 5}
    assert runner.invoke(app, ["send", "--week", "2026-W47"]).exit_code != 0
    with pytest.raises(ConflictError):
        resend(cli, 1)
    assert cancel(cli, 1) == 0  # twice is harmless


def test_worker_once_sends_every_sending_edition(cli: Engine, send_settings: Settings) -> None:
    add_subscribers(cli, 30)
    prepare_edition(cli, send_settings, W47)
    result = runner.invoke(app, ["worker", "--once", "--poll", "0.1"])
    assert result.exit_code == 0, result.output
    assert "sent=30" in result.output
    assert states(cli) == {"sent": 30}


def test_progress_lines_when_not_on_a_terminal(cli: Engine, tmp_path: Path) -> None:
    add_subscribers(cli, 45)
    result = runner.invoke(app, ["send", "--week", "2026-W47"])
    assert result.exit_code == 0
    assert "sent=45" in result.output


def test_a_worker_completes_a_ledger_left_unfinished(cli: Engine, send_settings: Settings) -> None:
    from digest.editions.service import open_edition
    from digest.render.edition import subject_for

    add_subscribers(cli, 12)
    # The edition, but no ledger yet.
    outcome = open_edition(cli, send_settings, W47, subject_for=subject_for(send_settings, W47))
    assert outcome.edition is not None and not outcome.edition.ledger_complete
    result = runner.invoke(app, ["worker", "--once", "--poll", "0.1"])
    assert result.exit_code == 0, result.output
    assert states(cli) == {"sent": 12}
    with cli.connect() as connection:
        row = connection.execute(sa.text("SELECT status, ledger_complete FROM edition")).one()
    assert row[0] == "sent" and bool(row[1])


def test_local_time_send_exits_with_the_next_send_time_and_status_shows_the_schedule(
    cli: Engine, postmark: FakePostmark, monkeypatch: pytest.MonkeyPatch
) -> None:
    import datetime as dt

    import time_machine

    monkeypatch.setenv("DIGEST_DELIVERY_MODE", "local-time")
    monkeypatch.setenv("DIGEST_TIMEZONE", "Europe/Berlin")
    get_settings.cache_clear()
    ids = add_subscribers(cli, 6, categories=([],))
    zones = ["Asia/Kolkata", "Asia/Kolkata", "Europe/London", "America/Los_Angeles", "UTC", ""]
    with cli.begin() as connection:
        for subscriber_id, zone in zip(ids, zones, strict=True):
            connection.execute(
                sa.update(Subscriber.__table__)  # type: ignore[attr-defined]
                .where(sa.column("id") == subscriber_id)
                .values(timezone=zone)
            )
    # Monday 23 November 2026, 05:00 UTC: Kolkata's 08:00 has passed (tomorrow's is next),
    # Berlin's (no zone given) is at 07:00 UTC, London's at 08:00, Los Angeles's at 16:00.
    with time_machine.travel(dt.datetime(2026, 11, 23, 5, 0, tzinfo=dt.UTC), tick=False):
        result = runner.invoke(app, ["send", "--week", "2026-W47"])
        assert result.exit_code == 0, result.output
        assert "6 rows wait for their subscribers' local send time" in result.output
        assert "the next are due at 2026-11-23 07:00 UTC (Mon 08:00 Europe/Berlin)" in result.output
        assert sum(postmark.message_ids().values()) == 0
        data = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
        assert data["schedule"] == [
            {"at": "2026-11-23T07:00:00Z", "pending": 2, "sent": 0, "zones": ["Europe/Berlin"]},
            {"at": "2026-11-23T08:00:00Z", "pending": 1, "sent": 0, "zones": ["Europe/London"]},
            {
                "at": "2026-11-23T16:00:00Z",
                "pending": 1,
                "sent": 0,
                "zones": ["America/Los_Angeles"],
            },
            {"at": "2026-11-24T02:30:00Z", "pending": 2, "sent": 0, "zones": ["Asia/Kolkata"]},
        ]
        text = runner.invoke(app, ["status"]).output
        assert "schedule (4 send times; local time in Europe/Berlin)" in text
        assert re.search(r"2026-11-23 08:00\s+Mon 09:00\s+1\s+0\s+Europe/London", text), text
    with time_machine.travel(dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC), tick=False):
        result = runner.invoke(app, ["send", "--week", "2026-W47"])
        assert result.exit_code == 0, result.output
        assert "3 rows wait" in result.output
        assert sum(postmark.message_ids().values()) == 3
        data = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
        assert [(slot["pending"], slot["sent"]) for slot in data["schedule"]] == [
            (0, 2),
            (0, 1),
            (1, 0),
            (2, 0),
        ]
