"""The guards hold at the claim, whoever sends: ``digest send``, ``digest worker --once``, the
scheduler's job and a worker in another process all send nothing while the edition is outside
the send window, paused or cancelled. ``digest send`` says until when (exit 75), and
``--now`` overrides the window (and says so in the service state)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from delivery_support import (
    POSTMARK_TOKEN,
    W47,
    FakePostmark,
    add_subscribers,
    digest_env,
    start_digest,
    states,
)
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from digest.cli.delivery import app
from digest.config import Settings, get_settings
from digest.db import session_scope, utcnow
from digest.delivery.guards import Guards, SendWindow, pause
from digest.delivery.ledger import cancel, claim_batch
from digest.delivery.prepare import prepare_edition
from digest.scheduler.job import JobStatus, run_weekly_job
from digest.state import read_state

runner = CliRunner()
GUARDS = ("window", "paused", "cancelled")


def closed_window(now: dt.datetime | None = None) -> str:
    """A one-hour window that opens two hours from now (UTC): closed now."""
    now = now or utcnow()
    start = (now + dt.timedelta(hours=2)).time()
    end = (now + dt.timedelta(hours=3)).time()
    return f"{start:%H:%M}-{end:%H:%M}"


@pytest.fixture
def env_settings(
    loaded: Engine, send_settings: Settings, postmark: FakePostmark, monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    values = {
        "DATABASE_URL": send_settings.database_url,
        "ENVIRONMENT": "test",
        "SECRET_KEY": send_settings.secret_key.get_secret_value(),
        "TIMEZONE": "UTC",
        "EMAIL_BACKEND": "postmark",
        "EMAIL_API_URL": postmark.url,
        "EMAIL_API_KEY": POSTMARK_TOKEN,
        "SEND_RATE": "100000",
        "SEND_BATCH_SIZE": "20",
    }
    for name, value in values.items():
        monkeypatch.setenv(f"DIGEST_{name}", value)
    get_settings.cache_clear()
    yield values
    get_settings.cache_clear()


def _guard(engine: Engine, settings: Settings, guard: str, monkeypatch: pytest.MonkeyPatch) -> int:
    add_subscribers(engine, 12)
    outcome = prepare_edition(engine, settings, W47)
    assert outcome.edition is not None and outcome.edition.id is not None
    if guard == "window":
        monkeypatch.setenv("DIGEST_SEND_WINDOW", closed_window())
        get_settings.cache_clear()
    elif guard == "paused":
        pause(engine, by="ops@test", reason="checking")
    else:
        cancel(engine, outcome.edition.id)
    return outcome.edition.id


def _nothing_sent(engine: Engine, postmark: FakePostmark, guard: str) -> None:
    assert postmark.accepted == []
    expected = {"skipped": 12} if guard == "cancelled" else {"pending": 12}
    assert states(engine) == expected


@pytest.mark.parametrize("guard", GUARDS)
def test_send_sends_nothing_while_guarded(
    loaded: Engine,
    send_settings: Settings,
    postmark: FakePostmark,
    env_settings: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    guard: str,
) -> None:
    _guard(loaded, send_settings, guard, monkeypatch)
    result = runner.invoke(app, ["send", "--week", "2026-W47"])
    _nothing_sent(loaded, postmark, guard)
    if guard == "window":
        assert result.exit_code == 75, result.output
        assert "outside the send window: held until " in result.output
        assert "--now" in result.output
    elif guard == "paused":
        assert result.exit_code == 75 and "paused by ops@test at " in result.output
    else:
        assert result.exit_code != 0 and "cancelled" in str(result.exception)


@pytest.mark.parametrize("guard", GUARDS)
def test_worker_once_sends_nothing_while_guarded(
    caplog: pytest.LogCaptureFixture,
    loaded: Engine,
    send_settings: Settings,
    postmark: FakePostmark,
    env_settings: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    guard: str,
) -> None:
    _guard(loaded, send_settings, guard, monkeypatch)
    result = runner.invoke(app, ["worker", "--once", "--poll", "0.1"])
    assert result.exit_code == 0, result.output
    _nothing_sent(loaded, postmark, guard)
    held = [r.getMessage() for r in caplog.records if r.getMessage().startswith("event=held")]
    if guard == "window":
        assert held and "reason=window" in held[0] and "until=20" in held[0]
    elif guard == "paused":
        assert held and "reason=paused" in held[0] and "by=ops@test" in held[0]


@pytest.mark.parametrize("guard", GUARDS)
def test_the_scheduler_job_sends_nothing_while_guarded(
    loaded: Engine,
    send_settings: Settings,
    postmark: FakePostmark,
    env_settings: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    guard: str,
) -> None:
    _guard(loaded, send_settings, guard, monkeypatch)
    settings = get_settings()
    report = run_weekly_job(
        settings,
        loaded,
        now=utcnow().replace(year=2026, month=11, day=24),
        max_hold=dt.timedelta(0),
    )
    expected = JobStatus.SKIPPED if guard == "cancelled" else JobStatus.HELD
    assert report.status is expected, report.as_dict()
    _nothing_sent(loaded, postmark, guard)
    # And the job's send itself, past its own hold step, holds at the claim.
    if guard != "cancelled":
        import threading

        from digest.editions.service import find_edition
        from digest.scheduler.job import deliver_edition

        with session_scope(loaded) as session:
            edition = find_edition(session, settings.newsletter, W47)
        assert edition is not None
        sent = deliver_edition(loaded, settings, edition, stop=threading.Event())
        assert str(sent.outcome) == ("held" if guard == "window" else "paused")
        _nothing_sent(loaded, postmark, guard)


@pytest.mark.slow
@pytest.mark.parametrize("guard", GUARDS)
def test_a_worker_in_another_process_sends_nothing_while_guarded(
    loaded: Engine,
    send_settings: Settings,
    postmark: FakePostmark,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    guard: str,
) -> None:
    _guard(loaded, send_settings, guard, monkeypatch)
    extra = {"send_window": closed_window()} if guard == "window" else {}
    env = digest_env(send_settings.database_url, postmark, **extra)
    log = tmp_path / "worker.log"
    worker = start_digest(["worker", "--once", "--poll", "0.1"], env, log)
    assert worker.wait(timeout=60) == 0, log.read_text()
    _nothing_sent(loaded, postmark, guard)


def test_the_claim_itself_holds(loaded: Engine, send_settings: Settings) -> None:
    add_subscribers(loaded, 3)
    prepare_edition(loaded, send_settings, W47)
    now = utcnow()
    guards = Guards(SendWindow.parse(closed_window(now)), dt.UTC)  # type: ignore[arg-type]
    claim = claim_batch(loaded, worker="w", limit=10, lease_seconds=60, guards=guards, now=now)
    assert not claim and claim.held is not None and claim.held.reason == "window"
    assert claim.held.until is not None and claim.held.until > now
    assert states(loaded) == {"pending": 3}


def test_send_now_overrides_the_window_and_says_so(
    loaded: Engine,
    send_settings: Settings,
    postmark: FakePostmark,
    env_settings: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _guard(loaded, send_settings, "window", monkeypatch)
    result = runner.invoke(app, ["send", "--week", "2026-W47", "--now"])
    assert result.exit_code == 0, result.output
    assert states(loaded) == {"sent": 12} and len(postmark.accepted) == 12
    with session_scope(loaded) as session:
        override = read_state(session, "send_window_override")
    assert override is not None and override["edition"] == 1 and override["week"] == "2026-W47"
    assert override["by"] and override["window"] == get_settings().send_window


def test_status_says_held_until_when_and_counts_deferred_rows(
    loaded: Engine,
    send_settings: Settings,
    env_settings: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import json

    import sqlalchemy as sa

    _guard(loaded, send_settings, "window", monkeypatch)
    due = utcnow() + dt.timedelta(minutes=3)
    with loaded.begin() as connection:
        connection.execute(
            sa.text(
                "UPDATE delivery SET state = 'deferred', not_before = :due"
                " WHERE id IN (SELECT id FROM delivery ORDER BY id LIMIT 2)"
            ),
            {"due": due},
        )
    data = json.loads(runner.invoke(app, ["status", "--json"]).stdout)
    assert data["state"].startswith("held until ") and "(send window " in data["state"]
    assert data["hold"]["reason"] == "window"
    assert data["deferred"] == 2 and data["counts"]["pending"] == 10
    assert data["next_retry_at"] is not None and data["eta_seconds"] is None
    text = runner.invoke(app, ["status"]).output
    assert "held until" in text and "deferred" in text and "next retry at" in text
