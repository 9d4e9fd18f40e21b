"""The weekly job end to end: import, week, edition, hold, send — idempotent, resumable after a
failed step, each step logged on one line, content URLs retried."""

from __future__ import annotations

import datetime as dt
import email
import json
import logging
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import time_machine
from sqlalchemy.engine import Engine

from digest.config import Settings
from digest.db import session_scope
from digest.delivery.guards import pause, resume
from digest.delivery.models import Delivery, DeliveryState
from digest.delivery.run import SendReport
from digest.editions.models import Edition, EditionStatus
from digest.scheduler.heartbeat import scheduler_status
from digest.scheduler.job import (
    JobStatus,
    deliver_edition,
    retrying_client,
    run_weekly_job,
)

UTC = dt.UTC
MONDAY = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # the job's week is 2026-W47


def outbox_recipients(outbox: Path) -> Counter[str]:
    counts: Counter[str] = Counter()
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes())
        counts[email.utils.parseaddr(str(message["To"]))[1]] += 1
    return counts


def editions(engine: Engine) -> list[Edition]:
    with session_scope(engine) as session:
        return list(session.exec(sa.select(Edition)).scalars())  # type: ignore[call-overload]


def delivery_states(engine: Engine) -> Counter[str]:
    with session_scope(engine) as session:
        rows = session.exec(sa.select(Delivery.state))  # type: ignore[call-overload]
        return Counter(str(state) for (state,) in rows)


def test_job_sends_the_edition_once_and_a_rerun_does_nothing(
    job_settings: Settings,
    engine: Engine,
    add_subscribers: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    emails = add_subscribers(5)
    with time_machine.travel(MONDAY, tick=False):
        first = run_weekly_job(job_settings, engine, trigger="once")
        lines = [r.getMessage() for r in caplog.records if r.name == "digest.scheduler.job"]
        second = run_weekly_job(job_settings, engine, trigger="once")
    assert first.status is JobStatus.SENT, first.as_dict()
    assert first.week == "2026-W47" and first.sent["sent"] == 5
    assert [step.name for step in first.steps] == ["import", "week", "edition", "hold", "send"]
    assert second.status is JobStatus.ALREADY_SENT and second.edition_id == first.edition_id
    assert outbox_recipients(job_settings.outbox_dir) == Counter(dict.fromkeys(emails, 1))
    (edition,) = editions(engine)
    assert edition.status == EditionStatus.SENT

    for step in ("import", "week", "edition", "hold", "send"):
        assert sum(f"event=job_step step={step} " in line for line in lines) == 1, step
    assert any("event=job_finished" in line and "status=sent" in line for line in lines)
    last_run = scheduler_status(engine)["last_run"]
    assert last_run["status"] == "already_sent" and last_run["trigger"] == "once"


def test_too_few_new_comparisons_skips_the_week(
    job_settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture, fake_sender: Any
) -> None:
    caplog.set_level(logging.INFO, logger="digest")
    settings = job_settings.model_copy(update={"min_new_comparisons": 50})
    sender = fake_sender()
    with time_machine.travel(MONDAY, tick=False):
        report = run_weekly_job(settings, engine, send_edition=sender)
    assert report.status is JobStatus.SKIPPED
    assert "at least 50 needed" in report.reason
    assert sender.calls == [] and editions(engine) == []
    assert any("step=edition status=skipped" in record.getMessage() for record in caplog.records)


def test_a_failed_import_fails_the_job_without_raising(
    job_settings: Settings,
    engine: Engine,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fake_sender: Any,
) -> None:
    settings = job_settings.model_copy(update={"content_dir": tmp_path / "missing"})
    sender = fake_sender()
    with time_machine.travel(MONDAY, tick=False):
        report = run_weekly_job(settings, engine, send_edition=sender)
    assert report.status is JobStatus.FAILED and not report.ok
    assert report.error is not None and "no such file or directory" in report.error
    import_step = report.step("import")
    assert import_step is not None and str(import_step.status) == "failed"
    assert sender.calls == []
    failed = [r for r in caplog.records if "step=import status=failed" in r.getMessage()]
    assert failed and failed[0].exc_info is not None  # the traceback is logged
    assert scheduler_status(engine)["last_run"]["status"] == "failed"


def test_a_failed_send_leaves_the_edition_resumable(
    job_settings: Settings, engine: Engine, add_subscribers: Any
) -> None:
    emails = add_subscribers(4)

    def broken(engine: Engine, settings: Settings, edition: Edition, *, stop: Any) -> SendReport:
        raise ConnectionError("provider unreachable")

    with time_machine.travel(MONDAY, tick=False):
        failed = run_weekly_job(job_settings, engine, send_edition=broken)
        assert failed.status is JobStatus.FAILED
        assert failed.error == "ConnectionError: provider unreachable"
        assert [edition.status for edition in editions(engine)] == [EditionStatus.SENDING]
        again = run_weekly_job(job_settings, engine)
    assert again.status is JobStatus.SENT and again.edition_id == failed.edition_id
    assert outbox_recipients(job_settings.outbox_dir) == Counter(dict.fromkeys(emails, 1))


def test_pause_between_batches_of_the_delivery_engine(
    job_settings: Settings, engine: Engine, add_subscribers: Any
) -> None:
    """The real delivery engine, two recipients a batch: a pause after the first batch stops it,
    the job holds, and after resume the rest goes out, nobody twice."""
    from digest.content.weeks import IsoWeek
    from digest.delivery.run import Run, run_edition
    from digest.delivery.sender import SendStats

    emails = add_subscribers(6)
    settings = job_settings.model_copy(update={"send_batch_size": 2})
    seen: dict[str, Any] = {}

    def pause_after_first_batch(stats: SendStats) -> None:
        if stats.batches == 1 and "paused" not in seen:
            seen["paused"] = pause(engine, by="ops", reason="looks wrong")

    def send(engine: Engine, settings: Settings, edition: Edition, *, stop: Any) -> SendReport:
        report = run_edition(
            engine,
            settings,
            IsoWeek.parse(edition.week),
            run=Run(stop=stop, on_progress=pause_after_first_batch),
        )
        if str(report.outcome) == "paused":
            seen["pending_when_paused"] = delivery_states(engine)["pending"]
        return report

    def sleep(seconds: float) -> None:
        traveller.shift(dt.timedelta(seconds=seconds))
        resume(engine, by="ops")

    with time_machine.travel(MONDAY, tick=False) as traveller:
        report = run_weekly_job(settings, engine, send_edition=send, sleep=sleep)
    assert report.status is JobStatus.SENT, report.as_dict()
    assert seen["pending_when_paused"] == 4  # stopped after one batch of two
    assert [step.name for step in report.steps][-4:] == ["hold", "send", "hold", "send"]
    assert outbox_recipients(settings.outbox_dir) == Counter(dict.fromkeys(emails, 1))
    assert delivery_states(engine) == Counter({str(DeliveryState.SENT): 6})


def test_stop_before_sending_leaves_the_edition_for_later(
    job_settings: Settings, engine: Engine, fake_sender: Any
) -> None:
    stop = threading.Event()
    stop.set()
    sender = fake_sender()
    with time_machine.travel(MONDAY, tick=False):
        report = run_weekly_job(job_settings, engine, send_edition=sender, stop=stop)
    assert report.status is JobStatus.STOPPED and sender.calls == []
    assert [edition.status for edition in editions(engine)] == [EditionStatus.SENDING]


def test_the_real_sender_is_the_default() -> None:
    assert run_weekly_job.__kwdefaults__["send_edition"] is deliver_edition


# -- content from a URL, with retries -----------------------------------------------------------

CONTENT_URL = "https://content.example.com/comparisons.json"


def fixture_list(comparisons_dir: Path) -> bytes:
    docs = [json.loads(path.read_text()) for path in sorted(comparisons_dir.glob("*.json"))]
    return json.dumps(docs).encode()


def test_content_url_is_retried_on_transient_failures(
    job_settings: Settings, engine: Engine, comparisons_dir: Path, fake_sender: Any
) -> None:
    body = fixture_list(comparisons_dir)
    answers = iter([httpx.Response(503), httpx.Response(429, headers={"Retry-After": "3"})])
    requests: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return next(answers, None) or httpx.Response(200, content=body)

    sleeps: list[float] = []
    client = retrying_client(httpx.MockTransport(handler), sleep=sleeps.append)
    settings = job_settings.model_copy(update={"content_url": CONTENT_URL, "content_dir": None})
    with time_machine.travel(MONDAY, tick=False):
        report = run_weekly_job(settings, engine, send_edition=fake_sender(), client=client)
    assert report.status is JobStatus.SENT, report.as_dict()
    assert len(requests) == 3 and len(sleeps) == 2
    assert sleeps[1] >= 3  # Retry-After honoured
    import_step = report.step("import")
    assert import_step is not None and import_step.detail["imported"] > 0


def test_a_content_url_that_keeps_failing_fails_the_job(
    job_settings: Settings, engine: Engine, fake_sender: Any
) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(502)

    client = retrying_client(httpx.MockTransport(handler), attempts=3, sleep=lambda _s: None)
    settings = job_settings.model_copy(update={"content_url": CONTENT_URL, "content_dir": None})
    with time_machine.travel(MONDAY, tick=False):
        report = run_weekly_job(settings, engine, send_edition=fake_sender(), client=client)
    assert report.status is JobStatus.FAILED and "HTTP 502" in (report.error or "")
    assert len(calls) == 3 and editions(engine) == []


def test_a_not_found_content_url_is_not_retried(
    job_settings: Settings, engine: Engine, fake_sender: Any
) -> None:
    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(404)

    client = retrying_client(httpx.MockTransport(handler), sleep=lambda _s: None)
    settings = job_settings.model_copy(update={"content_url": CONTENT_URL, "content_dir": None})
    report = run_weekly_job(settings, engine, send_edition=fake_sender(), client=client)
    assert report.status is JobStatus.FAILED and "HTTP 404" in (report.error or "")
    assert calls == [1]


def test_connection_errors_are_retried(job_settings: Settings, engine: Engine) -> None:
    from digest.scheduler.job import import_content

    calls: list[int] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ConnectError("connection refused", request=request)

    client = retrying_client(httpx.MockTransport(handler), attempts=4, sleep=lambda _s: None)
    settings = job_settings.model_copy(update={"content_url": CONTENT_URL, "content_dir": None})
    with pytest.raises(Exception, match="could not be fetched"):
        import_content(engine, settings, client=client)
    assert len(calls) == 4


def test_local_time_job_schedules_the_list_and_the_continuing_check_sends_it(
    job_settings: Settings, engine: Engine, add_subscribers: Any
) -> None:
    from digest.delivery.run import run_worker

    settings = job_settings.model_copy(
        update={"delivery_mode": "local-time", "timezone": "America/New_York"}
    )
    emails = add_subscribers(3)  # no zone of their own: New York's 08:00 (13:00 UTC)
    fires = dt.datetime(2026, 11, 22, 18, 0, tzinfo=dt.UTC)  # Monday 08:00 in UTC+14
    with time_machine.travel(fires, tick=False) as clock:
        report = run_weekly_job(settings, engine, trigger="schedule")
        assert report.status is JobStatus.SCHEDULED, report.as_dict()
        assert report.week == "2026-W47"
        assert "3 rows are due later, the first at 2026-11-23T13:00:00+00:00" in report.reason
        assert delivery_states(engine) == {"pending": 3}
        clock.move_to(dt.datetime(2026, 11, 23, 12, 59, tzinfo=dt.UTC))
        run_worker(engine, settings, once=True)
        assert delivery_states(engine) == {"pending": 3}
        clock.move_to(dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC))
        run_worker(engine, settings, once=True)
    assert delivery_states(engine) == {"sent": 3}
    assert outbox_recipients(settings.outbox_dir) == Counter(dict.fromkeys(emails, 1))
    (edition,) = editions(engine)
    assert edition.status == EditionStatus.SENT
